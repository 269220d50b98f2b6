"""Text helpers and chunking: sentence splitting, language, question specifics; exact, overlapping chunks."""

from __future__ import annotations

from assistant.answer.asked import asked_attribute, mentions, specifics
from assistant.document import Document
from assistant.ingest.chunk import chunk_document
from assistant.text import detect_lang, sentence_spans


def sentences(text):
    return [text[a:b] for a, b in sentence_spans(text)]


def test_chinese_sentences_split_on_chinese_punctuation():
    text = "直播带货是风口。但不是神话！品牌方该怎么做？先建立信任；再谈转化……最后复盘。"
    assert sentences(text) == ["直播带货是风口。", "但不是神话！", "品牌方该怎么做？", "先建立信任；", "再谈转化……", "最后复盘。"]


def test_closing_quotes_stay_with_their_sentence():
    assert sentences("他说：“别all in直播。”然后离开了。") == ["他说：“别all in直播。”", "然后离开了。"]


def test_english_sentences_keep_decimals_and_urls_whole():
    text = "Version 2.0 shipped in May. See https://example.com/a?b=1 for details! Is it good? Yes."
    assert sentences(text) == ["Version 2.0 shipped in May.", "See https://example.com/a?b=1 for details!",
                               "Is it good?", "Yes."]


def test_paragraph_breaks_end_a_sentence():
    assert sentences("标题\n\n正文第一句。\n第二段没有句号") == ["标题", "正文第一句。", "第二段没有句号"]


def test_language_detection():
    assert detect_lang("品牌应该all in直播带货吗？") == "zh"
    assert detect_lang("Should a brand go all in on TikTok?") == "en"


def test_specifics_a_question_names():
    assert specifics("印度第三艘“歼敌者”级核潜艇下水的时间") == ["第三", "歼敌者"]
    assert specifics("北京冬奥会男子500米速度滑冰金牌") == ["500"]
    assert specifics("《人世间》的编剧是谁？《人世间》的导演呢？") == ["人世间"]
    assert specifics("2022年G20峰会在哪里举行？U14组冠军是谁？") == ["2022", "G20", "U14"]
    # Plain words and bare numbers are left to retrieval: product names carry sizes ("5 Lbs").
    assert specifics("Thai Sticky Rice 5 Lbs: can you use it for sushi?") == []
    assert specifics("TikTok和哪个电商平台达成了合作？") == []


def test_the_attribute_a_question_asks_for():
    assert asked_attribute("《人世间》的编剧是谁？") == "编剧"
    assert asked_attribute("汤臣倍健2022年上半年的营收为多少？") == "营收"
    assert asked_attribute("漫长的季节的主演") == "主演"
    # Attributes a description answers without naming them, and frames around a question word.
    assert asked_attribute("ChatGPT的发布时间") is None
    assert asked_attribute("TikTok Shop的优势是什么？") is None
    assert asked_attribute("阿尔西比亚德斯是哪个国家的政治家？") is None
    assert asked_attribute("黄鞍鹦嘴鱼具有什么样的食用价值？") is None
    assert asked_attribute("品牌应该all in直播带货吗？") is None
    assert asked_attribute("Who directed the film?") is None
    # A yes/no question's predicate is not part of the attribute: "转化率也相对更高" answers it.
    assert asked_attribute("直播带货的转化率高吗？") == "转化率"
    assert asked_attribute("海运拼箱的运费贵吗") == "运费"


def test_a_number_is_only_mentioned_whole():
    assert mentions("男子500米决赛", "500") and not mentions("男子1500米决赛", "500")
    assert not mentions("增长2.500倍", "500") and mentions("U14组男单", "u14")


def _doc(text):
    return Document(doc_id="d", text=text)


def test_chunks_are_exact_slices_of_whole_sentences_with_overlap():
    text = "".join(f"第{i}句话讲的是跨境物流的第{i}个要点。" for i in range(60))
    doc = _doc(text)
    chunks = chunk_document(doc, size=100, overlap=40)
    bounds = {a for a, _ in sentence_spans(text)} | {b for _, b in sentence_spans(text)}
    assert len(chunks) > 5
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert c.start in bounds and c.end in bounds, "never cut inside a sentence"
        assert len(c.text) <= 100
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "consecutive chunks overlap"
        assert b.start > a.start, "and always move forward"
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_a_sentence_longer_than_the_limit_is_cut_near_a_comma():
    text = "，".join(["这是一个非常长的没有句号的句子片段"] * 40) + "。短句。"
    chunks = chunk_document(_doc(text), size=120, overlap=0)
    assert all(len(c.text) <= 120 for c in chunks)
    assert "".join(c.text for c in chunks) == text
    assert chunks[0].text.endswith("，")


def test_pdf_chunks_carry_their_page():
    text = "Page one text. More words here.\n\nPage two starts. It ends."
    doc = Document(doc_id="p", text=text, pages=[0, text.index("Page two")])
    chunks = chunk_document(doc, size=20, overlap=0)
    assert [c.page for c in chunks] == [1, 1, 2, 2]
