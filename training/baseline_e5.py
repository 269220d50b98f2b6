"""The baseline the reader must beat, on the same validation groups: e5's cosine between the question and
each candidate (what ranks the quotes without the reader, its strongest part), first-right and the
decline AUC as train_reader.py's figures.

    .venv/bin/python training/baseline_e5.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from assistant.models.e5int8 import E5Int8  # noqa: E402
from training.train_reader import DATA, figures  # noqa: E402


def main() -> None:
    groups = [json.loads(line) for line in (DATA / "val.jsonl").open(encoding="utf-8")]
    engine = E5Int8()
    questions = sorted({g["question"] for g in groups})
    candidates = sorted({c["text"] for g in groups for c in g["candidates"]})
    q = dict(zip(questions, engine.encode(questions, is_query=True)))
    s = dict(zip(candidates, engine.encode(candidates, is_query=False)))
    scores = [np.array([float(q[g["question"]] @ s[c["text"]]) for c in g["candidates"]]) for g in groups]
    for g in groups:
        g["labels"] = [c["label"] for c in g["candidates"]]
    print(json.dumps({"e5 cosine": figures(groups, scores)}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
