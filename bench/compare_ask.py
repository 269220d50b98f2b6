"""`ask` latency of this tree against an earlier revision, on the same index and questions, in one run.

Each round asks every question once in a fresh process of each version, the two alternating, so that
this machine's drift (20–30% between minutes) falls on both; the report gives each round's p50 / p95
and the after / before ratio of their medians. The baseline revision is checked out into a temporary
git worktree and imported from there (PYTHONPATH) with this tree's virtual environment.

    python bench/compare_ask.py INDEX QUESTIONS.jsonl [--rev 16ae94a] [--rounds 3]

QUESTIONS is JSONL with "text" (and "product_title", as ../shared/eval's epqa_en) or "question";
INDEX an index folder both versions can read (an evaluation set's, kept by `assistant eval --cache`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run inside each version's process: open the index, 5 warm-up questions, then each question once.
PROBE = """
import json, sys, time
from assistant import Assistant, load_config
bot = Assistant.open(sys.argv[1], load_config())
rows = [json.loads(line) for line in open(sys.argv[2], encoding="utf-8") if line.strip()]
texts = [f"{r['product_title']}: {r['text']}" if r.get("product_title") else r.get("text") or r["question"] for r in rows]
for t in texts[:5]:
    bot.ask(t)
ms = []
for t in texts:
    start = time.perf_counter()
    bot.ask(t)
    ms.append(1000 * (time.perf_counter() - start))
ms.sort()
print(json.dumps({"p50": ms[len(ms) // 2], "p95": ms[int(0.95 * len(ms))], "questions": len(ms),
                  "passages": bot.index.store.counts()["chunks"]}))
"""


def measure(source: Path, index: Path, questions: Path) -> dict:
    env = {"PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(index), str(questions)], cwd=source, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("questions", type=Path)
    parser.add_argument("--rev", default="HEAD~1", help="the baseline revision (default: the previous commit)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assistant-baseline-") as folder:
        baseline = Path(folder) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for n in range(1, args.rounds + 1):
                for name, source in (("before", baseline), ("after", ROOT)):
                    result = measure(source, args.index.resolve(), args.questions.resolve())
                    runs[name].append(result)
                    print(f"round {n} {name:6} p50 {result['p50']:6.1f} ms  p95 {result['p95']:6.1f} ms  "
                          f"({result['questions']} questions, {result['passages']} passages)", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, capture_output=True)
    for key in ("p50", "p95"):
        before = statistics.median(r[key] for r in runs["before"])
        after = statistics.median(r[key] for r in runs["after"])
        print(f"{key}: {before:.1f} → {after:.1f} ms (median of rounds), after / before = {after / before:.2f}×")


if __name__ == "__main__":
    main()
