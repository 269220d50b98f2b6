"""The extractive answer's rules on hand-written articles: a view the article rejects is never the
answer, a list comes whole (or says it goes on), the article's own reference markers stay verbatim."""

from __future__ import annotations

import json

import pytest

from assistant import Assistant, Config
from assistant.answer.compose import verify
from assistant.evaluate import returned_documents
from assistant.web import render_answer

DTC = """---
title: 独立站还是平台
date: 2024-05-01
source: https://example.com/dtc
---

有一些声音认为独立站是卖家摆脱平台规则最快、成本最低的办法。

这种观点忽略了独立站获取流量的成本，大多数新卖家在第一年很难盈利。

卖家做独立站前需要评估以下四个方面：

1.流量来源：广告投放的成本逐年上升，新站几乎没有自然流量。

2.支付通道：需要接入多种海外支付方式，并承担拒付的风险。

3.物流方案：自建物流的成本高于平台物流，旺季时更明显。

4.售后服务：退换货需要卖家自己处理，客服要覆盖多个时区。

据行业报告，独立站卖家的平均获客成本比平台卖家高出百分之四十[2]。独立站的复购率也取决于品牌的知名度[3]。
"""

SHIPPING = """---
title: Free shipping, honestly
date: 2024-02-10
---

Some argue that free shipping always pays for itself through higher conversion.

However, sellers of heavy or bulky products often lose money on every free-shipping order.

Sellers can cut the cost of returns in the following ways:

""" + "\n\n".join(f"{n}. Step {n}: check the carrier surcharge table for zone {n} and compare it with the price "
                  f"of packaging option {n} before you set the threshold." for n in range(1, 16)) + "\n"


TRUST = """---
title: 网红合作
---

网红营销与直播电商的结合是近年的大趋势。

品牌方和网红都需要的是：

真诚的关系

在电商领域，促使消费者下单的关键因素仍旧是信任感。
"""

# Syndicated news: the same report on two sites, one with a search engine's date prefix.
NEWS = ("海关总署宣布，自七月一日起，跨境电商出口海外仓的备案手续全面实行线上办理，企业无需再提交纸质材料。"
        "新规预计可以把备案时间从五个工作日缩短到一个工作日，首批试点覆盖深圳、宁波和郑州三地的海关。")
NEWS_COPY = "Jun 20, 2024 ... " + NEWS.replace("首批试点", "首批的试点")


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    library = tmp_path_factory.mktemp("rules")
    (library / "dtc.md").write_text(DTC, encoding="utf-8")
    (library / "shipping.md").write_text(SHIPPING, encoding="utf-8")
    (library / "trust.md").write_text(TRUST, encoding="utf-8")
    (library / "news.jsonl").write_text(
        json.dumps({"id": "news-site-a", "title": "海外仓备案改为线上办理", "text": NEWS}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "news-site-b", "title": "海外仓备案线上办 (转载)", "text": NEWS_COPY}, ensure_ascii=False)
        + "\n", encoding="utf-8")
    return Assistant.build([library], tmp_path_factory.mktemp("rules-index"), Config())


@pytest.mark.parametrize("question", ["卖家应该做独立站吗？独立站是不是成本最低的办法？",
                                      "Does free shipping always pay for itself?"])
def test_a_view_the_article_rejects_is_never_the_answer(bot, question):
    answer = bot.ask(question)
    assert not answer.declined, answer.text
    verify(answer, bot.index)
    if len(answer.citations) > 1:  # something else answers: the view does not lead
        assert not answer.citations[0].quote.startswith(("有一些声音认为", "Some argue")), answer.text
    for c in answer.citations:  # quoted at all, then together with its rejection
        if c.quote.startswith(("有一些声音认为", "Some argue")):
            assert "这种观点忽略了" in c.quote or "However" in c.quote, c.quote


def test_a_sentence_announcing_a_list_comes_with_the_whole_list(bot):
    answer = bot.ask("做独立站前需要评估哪些方面？")
    verify(answer, bot.index)
    listed = [c for c in answer.citations if "以下四个方面" in c.quote]
    assert listed, answer.text
    assert all(f"{n}." in listed[0].quote for n in range(1, 5)) and "客服要覆盖多个时区" in listed[0].quote


def test_a_list_too_long_to_quote_says_that_it_continues(bot):
    answer = bot.ask("How can sellers cut the cost of returns?")
    verify(answer, bot.index)
    listed = [c for c in answer.citations if "in the following ways" in c.quote]
    assert listed, answer.text
    assert "Step 1" in listed[0].quote and "Step 15" not in listed[0].quote
    assert "(the list continues in the source)" in answer.text


def test_the_articles_own_reference_markers_stay_verbatim_in_the_quote(bot):
    answer = bot.ask("独立站卖家的获客成本比平台卖家高多少？")
    verify(answer, bot.index)
    assert any("高出百分之四十[2]" in c.quote for c in answer.citations), answer.text


def test_a_sentence_that_ends_in_a_colon_is_quoted_with_what_it_announces(bot):
    answer = bot.ask("品牌方和网红都需要的是什么？")
    verify(answer, bot.index)
    announcing = [c for c in answer.citations if "都需要的是" in c.quote]
    assert announcing and "真诚的关系" in announcing[0].quote, answer.text


def test_a_near_identical_copy_in_another_document_is_folded_into_the_hit_and_listed(bot):
    """A seller sees a syndicated report once, and can still open each copy; a search returns both."""
    hits = bot.search("海外仓备案手续什么时候改为线上办理？", k=5)
    news = [h for h in hits if h.doc_id.startswith("news-site")]
    assert len(news) == 1, [(h.doc_id, h.text[:30]) for h in hits]
    other = ({"news-site-a", "news-site-b"} - {news[0].doc_id}).pop()
    assert news[0].same_text == [other]
    documents = returned_documents(hits)
    assert documents.index(other) == documents.index(news[0].doc_id) + 1

    answer = bot.ask("海外仓备案手续什么时候改为线上办理？")
    cited = [c for c in answer.citations if c.doc_id == news[0].doc_id]
    assert cited and cited[0].same_text == [other] and cited[0].to_dict()["same_text"] == [other]
    html = render_answer(answer, bot)
    assert "相同内容也见于" in html and f'href="/doc/{other}"' in html
