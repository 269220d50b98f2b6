"""How well Insights groups questions by subject (issue #31): purity and inverse purity of
insights.group_questions on hand-written seller questions with the grouping expected
(tests/fixtures/insights_questions.jsonl: 13 subjects, 5 questions each, Chinese and English mixed;
written for this, not taken from any evaluation set).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/grouping.py

Purity: the share of questions in the majority subject of their group (1.0: no group mixes subjects).
Inverse purity: the share of questions in the largest group of their subject (1.0: no subject split).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTIONS = ROOT / "tests" / "fixtures" / "insights_questions.jsonl"


def scores(labels: list[str], groups: list[list[int]]) -> tuple[float, float]:
    n = len(labels)
    purity = sum(Counter(labels[i] for i in g).most_common(1)[0][1] for g in groups) / n
    where = {i: k for k, g in enumerate(groups) for i in g}
    inverse = sum(Counter(where[i] for i in range(n) if labels[i] == t).most_common(1)[0][1]
                  for t in set(labels)) / n
    return purity, inverse


def main() -> None:
    from assistant.models.embed import get_embedder
    from assistant.log.insights import group_vectors

    cases = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels, questions = [c["topic"] for c in cases], [c["question"] for c in cases]
    print(f"{len(questions)} questions, {len(set(labels))} subjects")
    for model in sys.argv[1:] or ["multilingual-e5-small", "use-multilingual-v3"]:
        vectors = np.asarray(get_embedder(model).encode_query(questions), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for threshold in np.arange(0.30, 0.96, 0.02):
            groups = group_vectors(vectors, [1] * len(questions), float(threshold))
            p, inv = scores(labels, groups)
            print(f"{model:24s} {threshold:.2f}: {len(groups):2d} groups, purity {p:.2f}, inverse purity {inv:.2f}, "
                  f"F {2 * p * inv / (p + inv):.2f}")


if __name__ == "__main__":
    main()
