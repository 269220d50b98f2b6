"""The chat, the widget and the web component in a real headless browser (Debian's chromium).

The server is real (uvicorn on loopback), so is the browser; a second loopback origin (another
port) plays the intranet page that embeds the assistant.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ENGLISH_ARTICLE, write_library
from test_answer_rules import NEWS, NEWS_COPY
from test_library import NEW_ARTICLE as MX_ARTICLE
from test_serve import FOLLOW_UP, RETURNS, SEA, running

from assistant import Assistant, Config, index_library
from assistant.ingest.load import load_file
from assistant.web import EXAMPLES, create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Screenshots of what a seller sees, for a person to look at.
SCREENSHOTS = Path(os.environ.get("ASSISTANT_SCREENSHOTS", tempfile.gettempdir())) / "assistant-screenshots"
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAYMENT = "How do wholesale buyers in Poland pay?"
# An article whose text, title and source carry markup that sets window.__xss if it ever runs.
HOSTILE_ARTICLE = """---
title: 'Payment terms <img src=x onerror="window.__xss=2">'
date: 2024-05-01
source: 'javascript:window.__xss=3'
---

Wholesale buyers in Poland usually pay by bank transfer within thirty days <img src=x onerror="window.__xss=1"><script>window.__xss=1</script> of the invoice date.

Late payers are charged two percent interest per month.
"""


@pytest.fixture(scope="module")
def bot(tmp_path_factory) -> Iterator[Assistant]:
    library = write_library(tmp_path_factory.mktemp("browser-library"))
    (library / "payment-terms.md").write_text(HOSTILE_ARTICLE, encoding="utf-8")
    (library / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (
        {"id": "news-site-a", "title": "海外仓备案改为线上办理", "text": NEWS},
        {"id": "news-site-b", "title": "海外仓备案线上办 (转载)", "text": NEWS_COPY})), encoding="utf-8")
    folder = tmp_path_factory.mktemp("browser-index")
    index_library([library], folder, Config())
    assistant = Assistant.open(folder, Config())
    yield assistant
    assistant.close()


@pytest.fixture(scope="module")
def server(bot) -> Iterator[str]:
    with running(create_app(bot, Config())) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install chromium fonts-noto-cjk` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def intranet(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A second origin: a static file server on another loopback port. Yields (URL, its folder)."""
    folder = tmp_path_factory.mktemp("intranet")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


class Recorder:
    """What a page loaded and complained about."""

    def __init__(self, page):
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def origins(self) -> set[str]:
        return {"/".join(u.split("/")[:3]) for u in self.urls if u.startswith("http")}


@pytest.fixture
def new_page(browser):
    """Opens pages that are closed at the end of the test, before any server stops."""
    pages = []

    def open_page():
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(60_000)
        pages.append(page)
        return page, Recorder(page)

    yield open_page
    for page in pages:
        page.close()


def ask(scope, question: str) -> None:
    """Type a question into the chat (a page or a frame) and wait for the finished answer."""
    before = scope.locator(".sa-answer:not(.sa-streaming), .sa-error").count()
    box = scope.locator("textarea[data-testid='textbox']")
    box.fill(question)
    box.press("Enter")
    scope.locator(".sa-answer:not(.sa-streaming), .sa-error").nth(before).wait_for()


def follow_citation(page, message, number: int, quote: str):
    """Click [number] in `message` (a locator in `page` or a frame of it): its source opens in the message with
    the quote highlighted; its link opens the document page with the quote highlighted and in view. Returns that page."""
    message.locator(f"a.sa-cite.sa-n{number}").click()
    source = message.locator(f"details.sa-source.sa-n{number}")
    source.locator("mark.sa-quote").wait_for()  # visible: the source expanded
    assert source.get_attribute("open") is not None
    assert source.locator("mark.sa-quote").inner_text().split() == quote.split()
    with page.context.expect_page() as opened:
        source.locator("a.sa-open").click()
    doc = opened.value
    doc.wait_for_load_state()
    mark = doc.locator("mark#sa-quote")
    assert "".join(m.inner_text() for m in doc.locator("mark").all()) == quote
    doc.wait_for_function("() => { const r = document.getElementById('sa-quote').getBoundingClientRect();"
                          " return r.top >= 0 && r.bottom <= innerHeight; }")  # scrolled into view
    assert mark.is_visible()
    return doc


def test_chat_answers_chinese_and_english_with_sources(new_page, server, bot):
    page, seen = new_page()
    page.goto(server + "/")
    for example in EXAMPLES:  # the empty chat offers example questions
        page.get_by_text(example, exact=True).first.wait_for()

    ask(page, RETURNS)
    zh = page.locator(".message-content").last
    expected = bot.ask(RETURNS)
    assert "[1]" in zh.locator(".sa-answer").inner_text()
    assert zh.locator(".sa-sources-title").inner_text() == "来源"
    group = zh.locator(".sa-doc").first
    assert group.locator(".sa-title").inner_text() == "退货政策解读"
    assert "2023-08-15" in group.locator(".sa-meta").inner_text()
    first = group.locator(".sa-source").first
    assert first.locator(".sa-num").inner_text() == "[1]"
    assert first.locator(".sa-passage").is_hidden()  # compact: one line until it is opened
    assert first.locator("summary").bounding_box()["height"] < 40
    family = zh.locator(".sa-answer").evaluate("e => getComputedStyle(e).fontFamily")
    assert "Noto Sans CJK SC" in family
    label = page.locator("[aria-label*='根据资料库']").first.get_attribute("aria-label")  # text, not markup
    assert "<" not in label and expected.citations[0].quote[:10] in label
    doc = follow_citation(page, zh, 1, expected.citations[0].quote)
    assert doc.locator("h1").inner_text() == "退货政策解读" and "王芳" in doc.locator(".sa-docmeta").inner_text()
    doc.screenshot(path=str(SCREENSHOTS / "document-zh.png"))
    page.screenshot(path=str(SCREENSHOTS / "chat-zh.png"))

    ask(page, SEA)
    en = page.locator(".message-content").last
    assert "five to six weeks" in en.locator(".sa-answer").inner_text()
    link = en.locator(".sa-meta a").first
    assert link.get_attribute("href") == "https://example.com/batteries"
    assert en.locator(".sa-sources-title").inner_text() == "Sources"
    quote = bot.ask(SEA).citations[0].quote
    doc = follow_citation(page, en, 1, quote)
    assert doc.locator("h1").inner_text() == "Shipping lithium batteries to Europe"
    assert doc.locator(".sa-docmeta a").get_attribute("href") == "https://example.com/batteries"
    page.screenshot(path=str(SCREENSHOTS / "chat-en.png"))

    ask(page, FOLLOW_UP)  # declined on its own (see test_serve); answered with the conversation as context
    follow = page.locator(".message-content").last
    assert follow.locator(".sa-declined").count() == 0
    assert follow.locator(".sa-title").first.inner_text() == "Shipping lithium batteries to Europe"

    base = server.rstrip("/")
    assert seen.origins() == {base}, "the chat loaded something from another server"
    assert not seen.errors, seen.errors  # e.g. a Content-Security-Policy violation


def test_a_copy_of_the_same_news_is_linked_from_the_sources(new_page, server):
    """The same report on two sites is quoted once; its sources link the other copy, which opens."""
    page, seen = new_page()
    page.goto(server + "/")
    ask(page, "海外仓备案手续什么时候改为线上办理？")
    message = page.locator(".message-content").last
    group = message.locator(".sa-doc").filter(has=page.locator(".sa-same")).first
    same = group.locator(".sa-same")
    assert same.inner_text().startswith("相同内容也见于")
    titles = {"海外仓备案改为线上办理", "海外仓备案线上办 (转载)"}
    cited, copy = group.locator(".sa-title").inner_text(), same.locator("a").first
    assert cited in titles and copy.inner_text() == (titles - {cited}).pop()
    page.screenshot(path=str(SCREENSHOTS / "chat-same-text.png"))
    with page.context.expect_page() as opened:
        copy.click()
    doc = opened.value
    doc.wait_for_load_state()
    assert doc.locator("h1").inner_text() == copy.inner_text() and "跨境电商出口海外仓" in doc.locator(".sa-text").inner_text()
    assert not seen.errors, seen.errors


def test_examples_declines_and_failures(new_page, server):
    page, _ = new_page()
    page.goto(server + "/")
    page.get_by_text(EXAMPLES[2], exact=True).first.click()  # an example runs at once
    page.locator(".sa-sources").wait_for()
    assert page.locator(".message-content").first.inner_text().strip() == EXAMPLES[2]

    page, _ = new_page()
    page.goto(server + "/")
    ask(page, "巧克力蛋糕怎么做？")
    declined = page.locator(".sa-declined")
    assert "无法回答" in declined.inner_text() and page.locator(".sa-cite").count() == 0
    # What the library holds is shown under its own heading, as related and not as an answer.
    related = page.locator(".sa-related")
    assert related.locator(".sa-sources-title").inner_text() == "相关内容（不是这个问题的答案）"
    assert related.locator(".sa-source").count() >= 1

    ask(page, "长" * (Config().max_question_chars + 1))
    error = page.locator(".sa-error").last
    assert "问题太长" in error.inner_text() and "2000" in error.inner_text()
    # Issue #19: the refusal stood below the whole 2,001-character question, out of view.
    page.wait_for_function("() => { const r = [...document.querySelectorAll('.sa-error')].pop().getBoundingClientRect();"
                           " return r.top >= 0 && r.bottom <= innerHeight; }")
    assert page.locator(".message-content").nth(2).bounding_box()["height"] < 400  # the long question, cut short
    assert "Traceback" not in page.content()
    page.wait_for_function("() => !document.querySelector(\"textarea[data-testid='textbox']\").disabled")
    ask(page, SEA)  # the chat still works after a failure
    assert "five to six weeks" in page.locator(".sa-answer").last.inner_text()


def test_markup_in_documents_never_runs(new_page, server):
    page, _ = new_page()
    page.goto(server + "/")
    ask(page, PAYMENT)
    message = page.locator(".message-content").last
    message.locator(".sa-sources").wait_for()
    text = message.inner_text()
    assert '<script>window.__xss=1</script>' in text  # shown as text, not dropped or run
    assert 'Payment terms <img src=x onerror="window.__xss=2">' in message.locator(".sa-title").inner_text()
    assert "javascript:window.__xss=3" in message.locator(".sa-meta").inner_text()
    assert message.locator("script, img, a[href^='javascript']").count() == 0
    # A question with markup is shown through Gradio's sanitiser: its handler is stripped.
    ask(page, '<img src=x onerror="window.__xss=4">How do wholesale buyers pay?')
    assert page.evaluate("window.__xss") is None


def test_document_page_runs_nothing_from_the_article(new_page, server, bot):
    hit = next(h for h in bot.search(PAYMENT) if h.title.startswith("Payment terms"))
    doc = bot.document(hit.doc_id)
    start = doc.text.index("Wholesale")
    end = doc.text.index("invoice date.") + len("invoice date.")
    page, seen = new_page()
    page.goto(f"{server}/doc/{hit.doc_id}?start={start}&end={end}")
    mark = page.locator("mark#sa-quote")
    assert mark.inner_text() == doc.text[start:end]
    assert '<script>window.__xss=1</script>' in mark.inner_text()  # shown as text
    assert 'Payment terms <img src=x onerror="window.__xss=2">' == page.locator("h1").inner_text()
    assert page.title() == 'Payment terms <img src=x onerror="window.__xss=2">'
    assert "javascript:window.__xss=3" in page.locator(".sa-docmeta").inner_text()
    assert page.locator("main script, main img, a[href^='javascript']").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert not seen.errors, seen.errors
    page.screenshot(path=str(SCREENSHOTS / "document-hostile.png"))


def test_widget_embeds_the_chat_in_a_page_from_another_origin(new_page, server, intranet, bot):
    site, folder = intranet
    (folder / "widget.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Intranet</title></head><body><h1>Intranet</h1>"
        f"<script src='{server}/widget.js' data-title='卖家助手 &lt;img src=x onerror=window.__xss=5&gt;' async>"
        "</script></body></html>", encoding="utf-8")
    page, seen = new_page()
    page.goto(site + "/widget.html")
    button = page.locator(".sa-button")
    assert "卖家助手 <img src=x onerror=window.__xss=5>" in button.inner_text()
    assert page.locator("iframe.sa-frame").count() == 0  # the chat loads on first open only
    button.click()
    assert page.locator(".sa-panel").is_visible()
    chat = page.frame_locator("iframe.sa-frame")
    ask(chat, SEA)
    answer = chat.locator(".message-content").last
    assert "five to six weeks" in answer.inner_text() and answer.locator(".sa-source").count() >= 1
    assert chat.locator("footer").count() == 0 or chat.locator("footer").first.is_hidden()  # no "Use via API"
    assert chat.get_by_text("Use via API").count() == 0 or chat.get_by_text("Use via API").first.is_hidden()
    page.screenshot(path=str(SCREENSHOTS / "widget-en.png"))
    doc = follow_citation(page, answer, 1, bot.ask(SEA).citations[0].quote)
    assert doc.url.startswith(server + "/doc/")
    ask(chat, RETURNS)
    answer = chat.locator(".message-content").last
    follow_citation(page, answer, 1, bot.ask(RETURNS).citations[0].quote)
    page.screenshot(path=str(SCREENSHOTS / "widget-zh.png"))
    assert page.evaluate("window.__xss") is None
    assert seen.origins() == {site, server}, "the widget loaded something from a third server"
    page.locator(".sa-close").click()
    assert page.locator(".sa-panel").is_hidden()


def test_gradio_app_web_component_from_the_servers_own_assets(new_page, server, intranet):
    site, folder = intranet
    (folder / "component.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<script type='module' src='{server}/gradio.js'></script></head>"
        f"<body><h1>Intranet</h1><gradio-app src='{server}/'></gradio-app></body></html>", encoding="utf-8")
    page, seen = new_page()
    page.goto(site + "/component.html")
    # The header's link leads to the assistant's Library, not to a page of the host site.
    page.locator(f".sa-header a[href='{server}/library']").wait_for()
    ask(page, RETURNS)
    assert page.locator(".sa-title").first.inner_text() == "退货政策解读"
    # The page has no chat script: [1] is a link to the document page on the assistant's server.
    assert page.locator("a.sa-cite.sa-n1").first.get_attribute("href").startswith(server + "/doc/")
    assert seen.origins() == {site, server}


def test_origins_not_allowed_cannot_embed_the_chat(new_page, bot, intranet):
    site, folder = intranet
    config = Config(allowed_origins=("https://intranet.example.com",))
    with running(create_app(bot, config)) as restricted:
        assert httpx.get(restricted + "/healthz").status_code == 200
        (folder / "blocked.html").write_text(
            f"<!doctype html><html><body><script src='{restricted}/widget.js' async></script></body></html>",
            encoding="utf-8")
        page, _ = new_page()
        try:
            page.goto(site + "/blocked.html")
            page.locator(".sa-button").click()
            # Issue #19: a grey broken frame, the reason in the console only. Now the panel says it.
            problem = page.locator(".sa-problem[role='alert']")
            problem.wait_for()
            text = problem.inner_text()
            assert site in text and "allowed_origins" in text and f"ASSISTANT_ALLOWED_ORIGINS={site}" in text
            assert "不能嵌入助手" in text
            assert page.locator("iframe.sa-frame").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "widget-origin-not-allowed.png"))
        finally:
            page.close()  # before the server stops

    # A server that cannot be reached: nothing is known, the frame is shown (with the browser's error page).
    with running(create_app(bot, config)) as restricted:  # serves the script, then is gone
        (folder / "unreachable.html").write_text(
            f"<!doctype html><html><body><script src='{restricted}/widget.js' async></script></body></html>",
            encoding="utf-8")
        page, _ = new_page()
        page.goto(site + "/unreachable.html")
        page.locator(".sa-button").wait_for()
    try:
        page.locator(".sa-button").click()
        page.locator("iframe.sa-frame").wait_for(state="attached")
        assert page.locator(".sa-problem").count() == 0
    finally:
        page.close()


def test_the_users_own_question_is_shown_as_text(new_page, server):
    # Issue #9.8: the question was rendered as (sanitised) HTML: a fixed <div> covered the page, a <form> survived.
    page, _ = new_page()
    page.goto(server + "/")
    question = ('<div id="sa-cover" style="position:fixed;inset:0;z-index:99999;background:red">covered</div>'
                '<form id="sa-form" action="/x"><input name="q"></form> How long does sea freight take to Hamburg?')
    ask(page, question)
    mine = page.locator(".message-content").first
    assert mine.inner_text().strip() == question
    assert page.locator("#sa-cover, #sa-form, .message-content form, .message-content input").count() == 0
    ask(page, SEA)  # the conversation goes on (the history, escaped on the page, comes back as plain text)
    assert "five to six weeks" in page.locator(".sa-answer").last.inner_text()
    assert page.locator(".message-content").nth(2).inner_text().strip() == SEA


def test_library_view_uploads_lists_and_removes(new_page, tmp_path_factory, tmp_path):
    library = tmp_path_factory.mktemp("browser-upload-library")
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    folder = tmp_path_factory.mktemp("browser-upload-index")
    index_library([library], folder, Config())
    bot = Assistant.open(folder, Config())
    upload = tmp_path / "mx-customs.md"
    upload.write_text(MX_ARTICLE, encoding="utf-8")
    try:
        with running(create_app(bot, Config())) as url:
            page, seen = new_page()
            page.goto(url + "/")
            # Beside the chat, naming this server (the page may be shown inside another site's).
            page.locator(f".sa-header a[href='{url}/library']", has_text="资料库 Library").wait_for()
            page.goto(url + "/library")
            page.locator("#sa-docs tbody tr").first.wait_for()
            assert page.locator("#sa-docs tbody tr").count() == 1
            page.locator("#sa-files").set_input_files(str(upload))
            page.locator("#sa-uploads li.sa-upload[data-state='done']").wait_for(timeout=300_000)
            assert page.locator(".sa-file[data-status='added']").inner_text().startswith("mx-customs.md")
            row = page.locator("#sa-docs tbody tr", has_text="墨西哥站清关新规")
            row.wait_for()
            assert "2024-06-01" in row.inner_text() and "md" in row.inner_text()
            assert "1 块 chunks" in row.inner_text()  # says what the number counts
            page.locator("#sa-search").fill("清关")
            page.wait_for_function("() => document.querySelectorAll('#sa-docs tbody tr').length === 1")
            page.screenshot(path=str(SCREENSHOTS / "library.png"))

            chat, _ = new_page()
            chat.goto(url + "/")
            ask(chat, "墨西哥海关要求包裹附上什么？")
            assert chat.locator(".sa-title").first.inner_text() == "墨西哥站清关新规"

            page.once("dialog", lambda d: d.accept())
            row.locator("button.sa-remove").click()
            page.wait_for_function("() => !document.querySelector('#sa-docs tbody tr') || "
                                   "![...document.querySelectorAll('#sa-docs tbody tr')].some(r => r.innerText.includes('清关'))",
                                   timeout=300_000)
            page.locator("#sa-search").fill("")
            page.wait_for_function("() => document.querySelectorAll('#sa-docs tbody tr').length === 1")
            assert not (library / "uploads" / "mx-customs.md").exists()
            assert not seen.errors, "\n".join(seen.errors)
            page.close()
            chat.close()
    finally:
        bot.close()


def test_a_chinese_pdf_printed_by_the_browser_reads_as_plain_sentences(browser, tmp_path):
    # Chromium prints with Noto Sans CJK, whose PDF text maps some characters to look-alike radicals
    # (⼗ for 十, ⻓ for 长) and breaks every wrapped line: the loader gives back the plain sentences.
    sentence = "建议卖家提前备货，并为头程物流预留更多时间，旺季期间美国西海岸港口的平均等待时间从三天延长到十天。"
    page = browser.new_page()
    page.set_content(f"<meta charset=utf-8><h1>旺季物流提醒</h1><p>每年十一月到次年一月是海运旺季。{sentence * 3}</p>"
                     "<p>The financial office files flat-rate fees.</p>")
    path = tmp_path / "peak-season.pdf"
    page.pdf(path=str(path))
    page.close()
    (doc,), _ = load_file(path)
    assert doc.text.count(sentence) == 3, doc.text
    assert doc.text.startswith("旺季物流提醒\n") and "The financial office files flat-rate fees." in doc.text
    assert not any("\u2e80" <= ch <= "\u2fdf" for ch in doc.text)


def test_a_pasted_link_to_a_screenshot_is_cited_on_its_page_image(new_page, tmp_path_factory, tmp_path):
    """A seller pastes the link of a screenshot into the Library view; the answer's citation opens the
    page image with the quoted line outlined on it."""
    from test_formats import render

    line = "日本站的退货期限是买家收货后三十天内。"
    render(["日本站售后规则（截图）", line, "超过期限的退货申请由卖家自行决定是否接受。"]).save(tmp_path / "rules.png")
    pictures = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=pictures.serve_forever, daemon=True).start()
    library = tmp_path_factory.mktemp("browser-link-library")
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    config = Config(allowed_fetch_hosts=("127.0.0.1",))
    folder = tmp_path_factory.mktemp("browser-link-index")
    index_library([library], folder, config)
    bot = Assistant.open(folder, config)
    try:
        with running(create_app(bot, config)) as url:
            page, seen = new_page()
            page.goto(url + "/library")
            page.locator("#sa-urls").fill(f"http://127.0.0.1:{pictures.server_address[1]}/rules.png")
            page.locator("#sa-links button[type=submit]").click()
            page.locator("#sa-uploads li.sa-upload[data-state='done']").wait_for(timeout=300_000)
            assert page.locator(".sa-file[data-status='added']").count() == 1
            page.screenshot(path=str(SCREENSHOTS / "library-link.png"))
            page.goto(url + "/")
            ask(page, "日本站的退货期限是多久？")
            answer = page.locator(".message-content").last
            assert line in answer.inner_text(), answer.inner_text()
            doc = follow_citation(page, answer, 1, line)
            assert doc.locator("h1").inner_text() == "rules.png"  # named as its link names it
            box = doc.locator("figure.sa-scan polygon.sa-box")
            box.first.wait_for()
            assert box.count() == 1  # the quoted line, not the others
            image = doc.locator("figure.sa-scan image")
            assert doc.evaluate("(el) => el.getBBox().width > 0", image.element_handle())
            src = image.get_attribute("href")
            assert httpx.get(url + src).headers["content-type"] == "image/png"
            doc.screenshot(path=str(SCREENSHOTS / "page-image.png"))
            assert not seen.errors, "\n".join(seen.errors)
    finally:
        bot.close()
        pictures.shutdown()
