"""Collections in a real browser (issue #32): create one in the Library view, upload into it, ask in it from
the chat's picker and from the widget's data-collection, switch collection and see the question declined.
Screenshots go where test_browser's go, for a person to look at."""

from __future__ import annotations

import pytest

from assistant import Assistant, Config, index_library
from assistant.web import create_app
from test_browser import SCREENSHOTS, ask, browser, intranet, new_page  # noqa: F401  (fixtures)
from test_collections import NINGBO
from test_serve import running

pytestmark = pytest.mark.browser

FORKLIFT = """# 深圳仓作业时间

深圳仓的叉车每天早上八点开始作业，晚上十点停止。深圳仓的仓储费是每立方米每天2元。
"""
QUESTION = "叉车每天几点开始作业？"


def pick(scope, label: str) -> None:
    """Choose a collection in the chat's picker (a Gradio dropdown)."""
    scope.locator(".sa-collection input").click()
    scope.get_by_role("option", name="资料集 Collection · " + label).click()


def test_a_collection_made_and_filled_in_the_library_view_answers_in_the_chat_and_the_widget(
        new_page, intranet, tmp_path_factory, tmp_path):  # noqa: F811
    library = tmp_path_factory.mktemp("collections-browser-library")
    (library / "ningbo.md").write_text(NINGBO, encoding="utf-8")
    folder = tmp_path_factory.mktemp("collections-browser-index")
    index_library([library], folder, Config())
    upload = tmp_path / "shenzhen-hours.md"
    upload.write_text(FORKLIFT, encoding="utf-8")
    bot = Assistant.open(folder, Config())
    try:
        with running(create_app(bot, Config())) as url:
            page, seen = new_page()
            page.goto(url + "/library")
            page.locator("#sa-docs tbody tr").first.wait_for()
            answers = iter(["sz", "深圳仓"])
            page.on("dialog", lambda d: d.accept(next(answers, "")))
            page.locator("#sa-new").click()
            page.wait_for_function("() => document.getElementById('sa-collection').value === 'sz'")
            page.wait_for_function("() => !document.querySelector('#sa-docs tbody tr')")  # the new one is empty
            page.locator("#sa-files").set_input_files(str(upload))
            page.locator("#sa-uploads li.sa-upload[data-state='done']").wait_for(timeout=300_000)
            page.locator("#sa-docs tbody tr", has_text="深圳仓作业时间").wait_for()
            assert page.locator("#sa-collection option:checked").inner_text().startswith("深圳仓 (sz) · 1")
            page.screenshot(path=str(SCREENSHOTS / "collections-library.png"))
            (doc_id,) = [d for d in bot.index.store.doc_ids() if "叉车" in bot.document(d).text]
            assert bot.collections.of(doc_id) == ["sz"]

            chat, chat_seen = new_page()
            chat.goto(url + "/")
            pick(chat, "深圳仓 (sz)")
            ask(chat, QUESTION)
            answer = chat.locator(".message-content").last
            assert "八点" in answer.inner_text() and answer.locator(".sa-source").count() >= 1
            chat.screenshot(path=str(SCREENSHOTS / "collections-chat-sz.png"))
            pick(chat, "Default (default)")
            ask(chat, QUESTION)
            declined = chat.locator(".message-content").last
            assert "八点" not in declined.inner_text()
            assert declined.locator(".sa-answer.sa-declined").count() == 1
            chat.screenshot(path=str(SCREENSHOTS / "collections-chat-declined.png"))
            assert not chat_seen.errors, "\n".join(chat_seen.errors)
            # Reloading ends the page's open event stream, which Gradio's client may report as errors of the page
            # it leaves ("AbortError: signal is aborted", "Connection errored out", once in CI on a fast machine):
            # the reloaded page is judged by what it shows.
            chat.reload()  # the page keeps its conversation's collection
            chat.locator(".sa-collection input").wait_for()
            chat.wait_for_function("() => document.querySelector('.sa-collection input').value.includes('default')")

            site, hosted = intranet
            (hosted / "collection-widget.html").write_text(
                "<!doctype html><html><head><meta charset='utf-8'><title>Intranet</title></head><body>"
                f"<h1>深圳团队</h1><script src='{url}/widget.js' data-title='深圳仓助手' data-collection='sz' async>"
                "</script></body></html>", encoding="utf-8")
            widget, _ = new_page()
            widget.goto(site + "/collection-widget.html")
            widget.locator(".sa-button").click()
            frame = widget.frame_locator("iframe.sa-frame")
            ask(frame, QUESTION)
            assert "八点" in frame.locator(".message-content").last.inner_text()
            widget.screenshot(path=str(SCREENSHOTS / "collections-widget.png"))
            assert not seen.errors, "\n".join(seen.errors)  # (the intranet page's own server has no favicon)
            for opened in (page, chat, widget):  # before the server stops: their event streams end with them
                opened.close()
    finally:
        bot.close()
