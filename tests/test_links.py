"""Links into the library (issue #20): fetched from an HTTP server on loopback, bounded, and refused where unsafe."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest
from conftest import ENGLISH_ARTICLE, PageHandler

from assistant import Assistant, Config, index_library
from assistant.ingest.fetch import FetchError, fetch

ARTICLE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<meta property="og:title" content="{title}"><meta name="author" content="跨境小王">
<meta property="article:published_time" content="2024-05-20"></head>
<body><nav><a href="/">首页</a></nav><article><h1>{title}</h1>
<p>波兰仓的仓储费按立方米计算，旺季（十月到十二月）每立方米每月收费{fee}欧元，淡季减半。</p>
<p>超过九十天的长期库存另收每立方米十欧元的长期仓储费，建议卖家在旺季前清理滞销库存。</p>
</article><footer>版权所有</footer></body></html>"""
QUESTION = "波兰仓旺季的仓储费是多少？"
# A WeChat article page as mp.weixin.qq.com serves it: the body hidden until a script shows it, the date
# only in a script (a Unix time), the account name beside the author.
WECHAT = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta property="og:title" content="亚马逊欧洲站VAT新规解读"><meta property="og:url" content="http://mp.weixin.qq.com/s/abc">
<meta name="author" content="跨境小李"><title></title></head><body>
<div id="js_article" class="rich_media"><h1 class="rich_media_title" id="activity-name">亚马逊欧洲站VAT新规解读</h1>
<div id="meta_content"><span class="rich_media_meta rich_media_meta_text">跨境小李</span>
<a id="js_name">跨境头条</a><em id="publish_time" class="rich_media_meta"></em></div>
<div class="rich_media_content" id="js_content" style="visibility: hidden;">
<section><p><span>从2024年7月起，亚马逊欧洲站要求所有卖家在后台上传有效的VAT税号，</span><span>否则商品将被下架。</span></p>
<p>已经注册IOSS的卖家可以继续使用原有的申报方式，但需要在每月十五日前完成申报。</p></section></div>
<div class="rich_media_tool"><a>阅读原文</a> 阅读 10万+ 在看 23</div></div>
<script>var ct = "1716163200"; var nickname = htmlDecode("跨境头条");</script></body></html>"""


class Pages(PageHandler):
    fee = "二十五"

    def do_GET(self):  # noqa: N802 (the standard library's name)
        if self.path == "/article":
            self.page(ARTICLE.format(title="波兰海外仓收费标准", fee=self.fee))
        elif self.path == "/wechat":
            self.page(WECHAT)
        elif self.path == "/to-private":
            self.send_response(302)
            self.send_header("Location", "http://10.20.30.40/admin")
            self.end_headers()
        elif self.path == "/huge":  # no Content-Length: the size is only known while reading
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(50):
                    self.wfile.write(b"<p>" + b"x" * 1_000_000 + b"</p>")
            except OSError:
                pass  # the client stopped reading
        elif self.path == "/image":
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")  # not one the library reads
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"GIF89a")
        else:
            self.send_error(404)



@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


ALLOWED = Config(allowed_fetch_hosts=("127.0.0.1",), max_fetch_mb=10)


@pytest.mark.parametrize("url, reason", [
    ("{site}/article", "loopback address"),  # not allowed without allowed_fetch_hosts
    ("http://169.254.169.254/latest/meta-data/", "link-local address"),
    ("http://[::1]:9/", "loopback address"),
    ("file:///etc/passwd", "only http and https"),
    ("ftp://example.com/a", "only http and https"),
    ("http://user:pw@example.com/", "user name or password"),
])
def test_unsafe_links_are_refused_with_the_reason(site, url, reason):
    with pytest.raises(FetchError, match=reason):
        fetch(url.format(site=site), Config())


def test_redirects_to_private_addresses_and_huge_pages_are_refused(site):
    with pytest.raises(FetchError, match="private address"):
        fetch(f"{site}/to-private", ALLOWED)
    with pytest.raises(FetchError, match="larger than max_fetch_mb"):
        fetch(f"{site}/huge", ALLOWED)  # 50 MB sent; reading stops at 10
    with pytest.raises(FetchError, match="not a web page, PDF or picture"):
        fetch(f"{site}/image", ALLOWED)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"{site}/missing", ALLOWED)


def test_a_link_is_fetched_indexed_answered_and_cited_with_its_url(site, tmp_path, monkeypatch):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    index_library([library], tmp_path / "index", ALLOWED)
    bot = Assistant.open(tmp_path / "index", ALLOWED)
    url = f"{site}/article"
    [outcome] = bot.library.add_urls([url])
    assert outcome.status == "added", outcome
    doc = bot.document(outcome.doc_ids[0])
    assert (doc.title, doc.author, doc.date, doc.source) == ("波兰海外仓收费标准", "跨境小王", "2024-05-20", url)
    assert (library / outcome.stored_as).is_file()
    answer = bot.ask(QUESTION)
    assert not answer.declined and "二十五欧元" in answer.citations[0].quote
    first = answer.citations[0]
    assert first.source == url and bot.document(first.doc_id).text[first.start:first.end] == first.quote

    [again] = bot.library.add_urls([url])
    assert again.status == "unchanged" and again.doc_ids == outcome.doc_ids
    monkeypatch.setattr(Pages, "fee", "三十")
    [changed] = bot.library.add_urls([url])
    assert changed.status == "updated" and "三十欧元" in bot.ask(QUESTION).citations[0].quote
    # `assistant index` over the same folder agrees with the browser: the page keeps its URL.
    index_library([library], tmp_path / "index", ALLOWED, rebuild=True)
    assert bot.document(bot.ask(QUESTION).citations[0].doc_id).source == url

    [refused, fine] = bot.library.add_urls([f"{site}/to-private", url])
    assert refused.status == "rejected" and "private address" in refused.reason and fine.status == "unchanged"
    bot.close()


def test_the_cli_adds_files_and_links_and_removes_a_file(site, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from assistant.cli import main

    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    note = tmp_path / "note.md"
    note.write_text("# 备货提醒\n\n旺季前三个月开始备货，海运至少预留六周。", encoding="utf-8")
    index = str(tmp_path / "index")
    monkeypatch.setenv("ASSISTANT_ALLOWED_FETCH_HOSTS", "127.0.0.1")
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(library), "--index", index]).exit_code == 0
    added = runner.invoke(main, ["add", str(note), f"{site}/article", f"{site}/to-private",
                                 str(tmp_path / "missing.md"), "--index", index])
    assert added.exit_code == 0, added.output
    lines = added.output.splitlines()
    assert any(line.split()[0] == "added" and "note.md → uploads/note.md" in line for line in lines)
    assert any(line.split()[0] == "added" and "/article → uploads/links/" in line for line in lines)
    assert any(line.split()[0] == "rejected" and "private address" in line for line in lines)
    assert any(line.split()[0] == "rejected" and "missing.md" in line for line in lines)
    bot = Assistant.open(index, Config())
    assert "二十五欧元" in bot.ask(QUESTION).citations[0].quote
    removed = runner.invoke(main, ["remove", "--file", "uploads/note.md", "--index", index])
    assert removed.exit_code == 0 and not (library / "uploads" / "note.md").exists()
    assert runner.invoke(main, ["remove", "--file", "uploads/nothing.md", "--index", index]).exit_code == 1
    assert runner.invoke(main, ["add", f"{site}/to-private", "--index", index]).exit_code == 1
    bot.close()


def test_a_wechat_article_keeps_its_title_author_date_and_body_only(site, tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    index_library([library], tmp_path / "index", ALLOWED)
    bot = Assistant.open(tmp_path / "index", ALLOWED)
    [outcome] = bot.library.add_urls([f"{site}/wechat"])
    doc = bot.document(outcome.doc_ids[0])
    assert (doc.title, doc.author, doc.date) == ("亚马逊欧洲站VAT新规解读", "跨境小李", "2024-05-20")
    assert doc.source == f"{site}/wechat"  # the link the seller added
    assert doc.text.startswith("从2024年7月起，亚马逊欧洲站要求所有卖家在后台上传有效的VAT税号，否则商品将被下架。")
    assert "阅读" not in doc.text and "跨境头条" not in doc.text  # the page's chrome is not the article
    answer = bot.ask("亚马逊欧洲站对VAT税号有什么新要求？")
    assert not answer.declined and "VAT税号" in answer.citations[0].quote
    bot.close()
