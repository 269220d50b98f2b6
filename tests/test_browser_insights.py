"""The question log in a real browser (issue #21): the chat and the widget keep their conversation across a
reload, a 👎 takes a reason, and the Insights page shows the declined question and the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import write_library
from test_browser import SCREENSHOTS, ask, browser, intranet, new_page  # noqa: F401 (fixtures)
from test_insights import JAPAN
from test_serve import SEA, running

from assistant import Assistant, Config, index_library
from assistant.log.questions import utcnow
from assistant.web import create_app

pytestmark = pytest.mark.browser
LOGGED = Config(question_log=True)


@pytest.fixture(scope="module")
def bot(tmp_path_factory) -> Iterator[Assistant]:
    library = write_library(tmp_path_factory.mktemp("insights-library"))
    folder = tmp_path_factory.mktemp("insights-index")
    index_library([library], folder, Config())
    assistant = Assistant.open(folder, LOGGED)
    yield assistant
    assistant.close()


@pytest.fixture(scope="module")
def server(bot) -> Iterator[str]:
    with running(create_app(bot, LOGGED)) as url:
        yield url


def until(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def entries(bot: Assistant):
    bot.questions.flush(30)
    return bot.questions.store.entries(utcnow() - timedelta(days=1))


def test_the_chat_keeps_its_conversation_takes_a_dislike_with_a_reason_and_insights_show_it(new_page, server, bot):
    page, seen = new_page()
    page.goto(server + "/")
    ask(page, SEA)
    ask(page, JAPAN[0])
    assert page.locator(".sa-declined").count() == 1

    page.reload()
    answers = page.locator(".sa-answer")
    answers.nth(1).wait_for()
    assert "five to six weeks" in answers.nth(0).inner_text() and "sa-declined" in answers.nth(1).get_attribute("class")
    assert [m.inner_text().strip() for m in page.locator(".message-row.user-row .message-content").all()] == [SEA, JAPAN[0]]
    assert page.locator(".sa-source").count() >= 1  # the sources are shown again, not only the text
    page.screenshot(path=str(SCREENSHOTS / "chat-reloaded.png"))

    page.get_by_role("button", name="Dislike").first.click()
    panel = page.locator(".sa-reason")
    panel.wait_for()
    panel.get_by_text("引文断章取义 Quote out of context").click()
    panel.locator("textarea").fill("The quote is about air freight")
    page.screenshot(path=str(SCREENSHOTS / "chat-dislike-reason.png"))
    panel.locator("button", has_text="发送 Send").click()
    panel.wait_for(state="hidden")
    sea = next(e for e in entries(bot) if e.question == SEA)
    vote = until(lambda: [v for v in bot.questions.store.feedback(utcnow() - timedelta(days=1)) if v.answer_id == sea.id
                          and v.reason])[0]
    assert (vote.vote, vote.reason, vote.comment) == (-1, "out_of_context", "The quote is about air freight")
    assert {e.surface for e in entries(bot)} == {"chat"}

    page.reload()  # the vote is shown again
    page.get_by_role("button", name="Disliked").first.wait_for()

    insights, seen = new_page()
    insights.goto(server + "/insights")
    insights.locator("body[data-loaded='true']").wait_for()
    declined = insights.locator(".sa-group", has_text=JAPAN[0])
    assert "未回答 declined" in declined.inner_text()
    assert declined.locator("a.sa-upload").get_attribute("href") == "/library#sa-drop"
    assert declined.locator(".sa-closest a").count() >= 1
    disliked = insights.locator(".sa-group", has_text=SEA)
    assert "The quote is about air freight" in disliked.inner_text() and "quote out of context" in disliked.inner_text()
    assert insights.locator("#sa-chart svg rect.sa-day").count() >= 30
    assert "Shipping lithium batteries to Europe" in insights.locator("#sa-cited").inner_text()
    insights.screenshot(path=str(SCREENSHOTS / "insights.png"), full_page=True)
    assert seen.origins() == {server.rstrip("/")} and not seen.errors, seen.errors
    declined.locator("a.sa-upload").click()
    insights.locator("#sa-drop").wait_for()  # the Library's upload

    page.locator(".sa-new").click()  # a new conversation: empty, and still empty after a reload
    page.wait_for_function("() => !document.querySelector('.sa-answer')")
    page.reload()
    page.wait_for_timeout(1500)
    assert page.locator(".sa-answer").count() == 0


def test_the_widget_keeps_its_conversation_across_a_reload(new_page, server, intranet, bot):  # noqa: F811
    site, folder = intranet
    (folder / "insights-widget.html").write_text(
        f"<!doctype html><html><body><h1>Intranet</h1><script src='{server}/widget.js' async></script></body></html>",
        encoding="utf-8")
    page, _ = new_page()
    page.goto(site + "/insights-widget.html")
    page.locator(".sa-button").click()
    chat = page.frame_locator("iframe.sa-frame")
    ask(chat, JAPAN[1])
    page.reload()
    page.locator(".sa-button").click()
    chat = page.frame_locator("iframe.sa-frame")
    chat.locator(".sa-declined").wait_for()
    assert chat.locator(".message-row.user-row .message-content").first.inner_text().strip() == JAPAN[1]
    chat.get_by_role("button", name="Dislike").first.wait_for()  # the widget has the chat's buttons
    page.screenshot(path=str(SCREENSHOTS / "widget-reloaded.png"))
    assert [e.surface for e in entries(bot) if e.question == JAPAN[1]] == ["widget"]


def test_the_reason_form_opens_beside_the_answer_voted_on_and_confirms_after_send(new_page, server, bot):
    page, seen = new_page()
    page.set_viewport_size({"width": 1100, "height": 700})
    page.goto(server + "/")
    for question in (SEA, JAPAN[0], SEA, JAPAN[0]):  # a few turns: the input box is far below the first answer
        ask(page, question)
    first = page.locator(".message-row.bot-row").first
    first.scroll_into_view_if_needed()
    page.get_by_role("button", name="Dislike").first.click()
    panel = page.locator(".sa-reason")
    panel.wait_for()
    until(lambda: "sa-beside" in (panel.get_attribute("class") or ""))
    row, box = first.bounding_box(), panel.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= 700, box  # on screen
    assert abs(box["y"] - (row["y"] + row["height"])) < 120 or row["y"] + row["height"] > 700 - box["height"], (row, box)
    page.screenshot(path=str(SCREENSHOTS / "chat-dislike-beside.png"))
    panel.get_by_text("答案不对 Wrong answer").click()
    panel.locator("button", has_text="发送 Send").click()
    thanks = page.locator(".sa-thanks")
    thanks.wait_for()
    assert "已记下" in thanks.inner_text() and thanks.get_attribute("role") == "status"
    assert not seen.errors, seen.errors  # no error in the page's console
