"""What the tuning aids share: one pass over a question set's questions, cached, on a kept index."""

from __future__ import annotations

import argparse
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

from assistant import Assistant, Config, index_library
from assistant.evaluate import HALVES, read_jsonl

CACHE = Path(tempfile.gettempdir()) / "assistant-tune"


def arguments(doc: str) -> argparse.Namespace:
    """SETS [--half dev|test] [--cache DIR], as both tuning aids take them."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--half", choices=sorted(HALVES), default=None)
    parser.add_argument("--cache", type=Path, default=CACHE, help="the folder of `assistant eval --cache`")
    return parser.parse_args()


def cached_rows(kind: str, dataset: Path, config: Config, indexes: Path, half: str | None,
                rows: Callable[[Assistant, list[dict]], list[dict]]) -> list[dict]:
    """`rows(bot, questions)` for the set's questions (the `half` of them), computed once per
    configuration and kept in CACHE; the set's index is indexes/<set>, built there if missing."""
    cache = CACHE / (f"{kind}-{dataset.name}-{half}-{config.model}-{config.sentence_model}-"
                     f"{config.chunk_size}-{config.chunk_overlap}.pkl")
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    folder = indexes / dataset.name
    index_library([dataset / "docs.jsonl"], folder, config)
    bot = Assistant.open(folder, config)
    found = rows(bot, read_jsonl(dataset / "queries.jsonl")[HALVES[half] if half else slice(None)])
    CACHE.mkdir(exist_ok=True)
    cache.write_bytes(pickle.dumps(found))
    return found
