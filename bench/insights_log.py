"""Insights and the CSV export over a full question log (issue #31, item 4): time and peak memory with
100,000 entries (question_log_rows' default) against 1,000, in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/insights_log.py [--entries 1000 100000]

Builds a small index once (three articles), then for each size starts a process of its own (so that each
peak is its own) that copies the index, fills the log through its store (questions of a few dozen
templates made distinct by numbers, Chinese and English, 30% declined, 2% voted down, each with an e5-sized
vector and a citation), serves the app on loopback and times GET /api/insights twice (the first call embeds
the grouped questions in USE, the second finds them cached) and the streamed GET
/api/insights/questions.csv. Peak RSS is the process's high-water mark over the requests only (reset after
the log is filled, /proc/self/clear_refs). Prints one row per size and the ratios against the first size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ARTICLES = {
    "fba.md": "# 亚马逊FBA仓储费\n\n旺季（10月至12月）的FBA月度仓储费为每立方英尺2.40美元，其他月份为0.87美元。超过365天的库存另收长期仓储费。",
    "returns.md": "# Returns in Germany\n\nGerman buyers may return online orders within 14 days of delivery without giving "
                  "a reason. Sellers must refund within 14 days of the withdrawal.",
    "tiktok.md": "# TikTok Shop UK\n\nTo open a TikTok Shop in the UK a seller needs a UK company or a registered sole "
                 "trader account, a UK phone number and a bank account in the seller's name.",
}
TEMPLATES = [
    "How much is the FBA storage fee for {n} cubic feet in month {m}?", "亚马逊FBA第{m}个月{n}立方英尺的仓储费是多少？",
    "Can a buyer in Germany return order {n} after {m} days?", "德国买家第{m}天还能退回订单{n}吗？",
    "What do I need to open TikTok Shop UK store number {n}?", "TikTok英国小店{n}号需要什么资料？第{m}步",
    "How do I lower ACoS for campaign {n} in week {m}?", "PayPal hold on sale {n}: when is it released, day {m}?",
    "Which certificate does charger model {n} need in Japan (batch {m})?", "日本销售充电器型号{n}需要什么认证？批次{m}",
]


def child(index: Path, entries: int) -> dict:
    import httpx
    import numpy as np
    from test_serve import running

    from assistant import Assistant, Config
    from assistant.log.questions import Entry, Vote, new_id, utcnow
    from assistant.web import create_app

    with tempfile.TemporaryDirectory(prefix="insights-bench-") as tmp:
        folder = Path(shutil.copytree(index, Path(tmp) / "index"))
        config = Config(question_log=True)
        bot = Assistant.open(folder, config)
        try:
            store = bot.questions.store
            doc = next(iter(bot.index.store.doc_ids()))
            rng = np.random.default_rng(0)
            now = utcnow()
            started = time.perf_counter()
            batch = 5000
            for first in range(0, entries, batch):
                part = []
                for i in range(first, min(entries, first + batch)):
                    vector = rng.standard_normal(384).astype(np.float32)
                    declined = i % 10 < 3
                    part.append(Entry(new_id(), now - _seconds(i, entries), "chat",
                                      TEMPLATES[i % len(TEMPLATES)].format(n=i, m=i % 12 + 1), "en", declined,
                                      "nothing relevant" if declined else "",
                                      [] if declined else [{"doc_id": doc, "start": 0, "end": 20}], 0.4,
                                      vector=vector / np.linalg.norm(vector)))
                store.write(part, [])
                for e in part[::50]:
                    store.vote(Vote(e.id, "bench", -1))
            fill = time.perf_counter() - started
            rss = _status("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")  # the high-water mark from here on
            with running(create_app(bot, config)) as url, httpx.Client(base_url=url, timeout=3600) as client:
                times = []
                for _ in range(2):
                    started = time.perf_counter()
                    reply = client.get("/api/insights", params={"days": 30})
                    times.append(time.perf_counter() - started)
                    assert reply.status_code == 200, reply.text[:300]
                    totals = reply.json()["totals"]
                started = time.perf_counter()
                size = 0
                with client.stream("GET", "/api/insights/questions.csv", params={"days": 30}) as reply:
                    assert reply.status_code == 200
                    for piece in reply.iter_bytes():
                        size += len(piece)
                csv = time.perf_counter() - started
            return {"entries": entries, "logged": totals["questions"], "fill_s": fill, "insights_first_s": times[0],
                    "insights_again_s": times[1], "csv_s": csv, "csv_mb": size / 1e6, "rss_mb": rss / 1024,
                    "peak_mb": _status("VmHWM") / 1024}
        finally:
            bot.close()


def _seconds(i: int, n: int):
    from datetime import timedelta

    return timedelta(seconds=(n - i) * 20 * 86400 / n)  # spread over the last 20 days


def _status(field: str) -> int:
    """A field of /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.index), args.child)))
        return
    from assistant import Config, index_library

    with tempfile.TemporaryDirectory(prefix="insights-bench-") as tmp:
        library = Path(tmp) / "lib"
        library.mkdir()
        for name, text in ARTICLES.items():
            (library / name).write_text(text, encoding="utf-8")
        index_library([library], Path(tmp) / "index", Config())
        rows = []
        for n in args.entries:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--index", str(Path(tmp) / "index")],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{r['entries']:>7} entries ({r['logged']} in 30 days): fill {r['fill_s']:.1f} s; /api/insights "
                  f"{r['insights_first_s']:.2f} s first, {r['insights_again_s']:.2f} s again; questions.csv "
                  f"{r['csv_s']:.2f} s ({r['csv_mb']:.1f} MB); RSS {r['rss_mb']:.0f} MB before, peak {r['peak_mb']:.0f} MB",
                  flush=True)
        base = rows[0]
        for r in rows[1:]:
            print(f"{r['entries']} against {base['entries']}: /api/insights x{r['insights_first_s'] / base['insights_first_s']:.1f} "
                  f"first, x{r['insights_again_s'] / base['insights_again_s']:.1f} again; csv "
                  f"x{r['csv_s'] / base['csv_s']:.1f}; peak RSS x{r['peak_mb'] / base['peak_mb']:.2f} "
                  f"(+{r['peak_mb'] - base['peak_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
