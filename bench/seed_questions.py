"""Our own questions about the bundled article (tests/fixtures/seed_questions.jsonl, half of them in
English over the Chinese text): passage hit@5 by search mode, and for the answers the share answered,
whose first quote holds the evidence, and where some quote holds it; and how long `ask` takes. Then the
off- and near-topic ones (tests/fixtures/off_topic_questions.txt, half in English): how many are declined.

    assistant index corpus && python bench/seed_questions.py [INDEX]
"""
import json
import statistics
import sys
import time
from pathlib import Path

from assistant import Assistant

QUESTIONS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "seed_questions.jsonl"
OFF_TOPIC = QUESTIONS.with_name("off_topic_questions.txt")
bot = Assistant.open(sys.argv[1] if len(sys.argv) > 1 else "index")
cases = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
groups = {"English": [c for c in cases if c["question"].isascii()], "Chinese": [c for c in cases if not c["question"].isascii()]}


def holds(text: str, case: dict) -> bool:
    return any(e in text for e in case["evidence"])


for mode in ("dense", "keyword", "hybrid"):
    print(f"{mode:8} passage hit@5: " + ", ".join(
        f"{name} {sum(any(holds(h.text, c) for h in bot.search(c['question'], k=5, mode=mode)) for c in group)}"
        f"/{len(group)}" for name, group in groups.items()))


def timed_ask(question: str):
    start = time.perf_counter()
    answer = bot.ask(question)
    return answer, time.perf_counter() - start


bot.ask("预热 warm-up")
for name, group in groups.items():
    timed = [(c, *timed_ask(c["question"])) for c in group]
    answers = [(c, a) for c, a, _ in timed]
    again = [timed_ask(c["question"])[1] for c in group]  # sentences e5 embedded for the first are cached
    print(f"{name} ask latency: p50 {1000 * statistics.median(t for *_, t in timed):.0f} ms the first time, "
          f"{1000 * statistics.median(again):.0f} ms again")
    answered = [(c, a) for c, a in answers if not a.declined]
    first = sum(holds(a.citations[0].quote, c) for c, a in answered)
    some = sum(any(holds(q.quote, c) for q in a.citations) for c, a in answered)
    print(f"{name} answers: answered {len(answered)}/{len(group)}, first quote holds the evidence {first}/{len(group)}, "
          f"some quote {some}/{len(group)}")
    for c, a in answers:
        if a.declined or not holds(a.citations[0].quote, c):
            print(f"   first quote misses: {c['question']}  ->  {a.citations[0].quote[:60] if a.citations else 'declined'}")

off_topic = [q for q in OFF_TOPIC.read_text(encoding="utf-8").splitlines() if q.strip()]
for name, group in (("English", [q for q in off_topic if q.isascii()]),
                    ("Chinese", [q for q in off_topic if not q.isascii()])):
    answered = [q for q in group if not bot.ask(q).declined]
    print(f"{name} off- and near-topic questions declined: {len(group) - len(answered)}/{len(group)}")
    for q in answered:
        print(f"   answered: {q}")
