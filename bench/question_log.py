"""The question log's cost to an answer (issue #21), and the grouping threshold of Insights.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/question_log.py [--index index] [--rounds 15]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/question_log.py --grouping

Latency: copies the index folder into a temporary one (the log writes into its database), opens it
once, and asks bench/api_load.py's questions (answered and declined) with `Assistant.ask`, the log on
and off in turn for each question (ABBA order in each round, so that a shared machine's drift falls
on both). Prints the median and mean per question with the log on and off, and their ratio (the aim:
within 5%). The log's writes happen on its thread; what an answer pays is building the entry and
queueing it.

--grouping: the similarity of hand-written seller questions (9 topics, English and Chinese mixed) in
the default model, and how average-linkage grouping (insights.group_vectors) splits them at each
threshold: the measurement behind insights.GROUP_SIMILARITY.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import QUESTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = {
    "tiktok": ["How do I open a TikTok Shop in the UK?", "What are the steps to register a TikTok shop for Britain?",
               "怎么开通TikTok英国小店？", "TikTok Shop UK seller registration requirements"],
    "cake": ["How do I bake a chocolate cake?", "What's a good recipe for chocolate cake?", "巧克力蛋糕怎么做？"],
    "paypal": ["How long does PayPal hold funds for new sellers?", "Why is my PayPal money on hold after a sale?",
               "PayPal冻结新卖家资金多久？"],
    "japan": ["What certification do I need to sell electronics in Japan?",
              "Which PSE mark rules apply to chargers sold in Japan?", "日本销售电子产品需要什么认证？"],
    "fba_fees": ["How much are Amazon FBA storage fees in Q4?",
                 "What does Amazon charge for long-term storage in fulfillment centers?", "亚马逊FBA仓储费是多少？"],
    "returns_de": ["What is the return period for online orders in Germany?",
                   "How many days do German buyers have to send items back?", "德国网购退货期限是几天？"],
    "ads": ["How do I lower my ACoS on Amazon ads?", "Tips to reduce advertising cost of sale for sponsored products",
            "怎么降低亚马逊广告ACoS？"],
    "ebay": ["How do I get eBay Top Rated Seller status?", "What are the requirements for eBay top rated seller?"],
    "shopify_theme": ["How do I change my Shopify theme font?", "Can I customize fonts in a Shopify theme?"],
}


def latency(index: Path, rounds: int) -> None:
    from assistant import Assistant, Config
    from assistant.log.questions import QuestionLog, open_question_store

    with tempfile.TemporaryDirectory(prefix="question-log-bench-") as tmp:
        folder = Path(shutil.copytree(index, Path(tmp) / "index"))
        bot = Assistant.open(folder, Config())
        log = QuestionLog(open_question_store(bot.config, folder), bot.config.question_log_days)
        for q in QUESTIONS:  # models loaded, caches warm: not timed
            bot.ask(q)
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(rounds):
            for q in QUESTIONS:
                order = (True, False, False, True) if r % 2 == 0 else (False, True, True, False)
                for on in order:
                    bot.questions = log if on else None
                    started = time.perf_counter()
                    bot.ask(q, surface="bench")
                    times[on].append(time.perf_counter() - started)
        bot.questions = log
        log.flush(60)
        counts = log.counts()
        bot.close()
    on, off = times[True], times[False]
    print(f"{len(on)} answers with the log on, {len(off)} off ({len(QUESTIONS)} questions x {rounds} rounds, ABBA)")
    for name, f in (("median", statistics.median), ("mean", statistics.fmean)):
        print(f"  {name:>6}: on {f(on) * 1000:7.1f} ms   off {f(off) * 1000:7.1f} ms   on/off {f(on) / f(off):.3f}")
    print(f"  log: {counts['written']} written, {counts['failed']} failed, {counts['dropped']} dropped")


def grouping() -> None:
    import numpy as np

    from assistant.models.embed import get_embedder
    from assistant.log.insights import group_vectors

    questions = [(topic, q) for topic, qs in TOPICS.items() for q in qs]
    vectors = get_embedder().encode_query([q for _, q in questions])
    sim = vectors @ vectors.T
    same, other = [], []
    for i, j in itertools.combinations(range(len(questions)), 2):
        (same if questions[i][0] == questions[j][0] else other).append(float(sim[i, j]))
    print(f"{len(questions)} questions, {len(TOPICS)} topics. Cosine, same topic: min {min(same):.3f} "
          f"mean {np.mean(same):.3f}; other topics: max {max(other):.3f} mean {np.mean(other):.3f}")
    labels = [t for t, _ in questions]
    for threshold in np.arange(0.80, 0.895, 0.01):
        groups = group_vectors(vectors, [1] * len(questions), float(threshold))
        exact = sum(sorted(labels[i] for i in g) == [t] * len(TOPICS[t]) for g in groups for t in {labels[g[0]]})
        mixed = max(len({labels[i] for i in g}) for g in groups)
        print(f"  {threshold:.2f}: {len(groups):2d} groups, {exact} topics exactly, at most {mixed} topics in a group")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=str(ROOT / "index"), help="An index folder (copied, not changed).")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--grouping", action="store_true", help="Measure the grouping threshold instead.")
    args = parser.parse_args()
    if args.grouping:
        grouping()
    else:
        latency(Path(args.index), args.rounds)


if __name__ == "__main__":
    main()
