"""Cold start: how long a fresh process takes to its first answer, against Python's and torch's own start.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/cold_start.py [--index index] [--rounds 3]

Each round runs, one after another (so machine drift hits all alike): `python -c pass`, `python -c
"import torch"`, `assistant ask QUESTION` on the index (a cold process each time), and `assistant serve`
until its first answer to POST /api/ask. Prints each one's median and its ratio to `python -c pass` and
to importing torch. Without an index folder, the bundled corpus is indexed first (not timed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "品牌应该all in直播带货吗？"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def serve_to_first_answer(index: Path) -> float:
    started = time.perf_counter()
    with serving(index, ENV) as (url, server):
        while True:
            try:
                if httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=60).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.perf_counter() - started > 180:
                raise RuntimeError("the server did not answer within 180 s")
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index"), help="index folder (default: ./index)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    index = Path(args.index)
    with tempfile.TemporaryDirectory() as tmp:
        if not (index / "library.sqlite").is_file():
            index = Path(tmp) / "index"
            subprocess.run([sys.executable, "-m", "assistant.cli", "index", str(ROOT / "corpus"), "--index", str(index)],
                           cwd=ROOT, env=ENV, check=True, capture_output=True)
        runs: dict[str, list[float]] = {"python -c pass": [], "import torch": [], "assistant ask": [],
                                        "assistant serve → first answer": []}
        for _ in range(args.rounds):
            runs["python -c pass"].append(timed([sys.executable, "-c", "pass"]))
            runs["import torch"].append(timed([sys.executable, "-c", "import torch"]))
            runs["assistant ask"].append(timed([sys.executable, "-m", "assistant.cli", "ask", QUESTION,
                                                "--index", str(index)]))
            runs["assistant serve → first answer"].append(serve_to_first_answer(index))
    base, torch = statistics.median(runs["python -c pass"]), statistics.median(runs["import torch"])
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"{name:<32} median {median:6.2f} s  ({median / base:5.1f}x python -c pass, "
              f"{median / torch:4.2f}x import torch)  runs: {', '.join(f'{t:.2f}' for t in times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
