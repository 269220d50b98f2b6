"""Shared fixtures: a small library of every supported format, built with the real default model."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from http.server import BaseHTTPRequestHandler
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub, ever: the models ship in packages

FIXTURES = Path(__file__).parent / "fixtures"


class PageHandler(BaseHTTPRequestHandler):
    """A loopback web site's request handler: `page(html)` answers 200 with the page; nothing is logged."""

    def page(self, html: str) -> None:
        body = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
SAVED_PAGE = FIXTURES / "saved_page_amz123.txt"
# A copy of the article the project ships in corpus/: tests never read the clone's corpus/, which holds what
# its user added in the Library view (corpus/uploads/), kept by `make clean`.
BUNDLED = FIXTURES / "bundled"
CORPUS = str(Path(__file__).resolve().parent.parent / "corpus")
_corpus_reads: list[str] = []


def _watch_corpus(event: str, args: tuple) -> None:
    """An audit hook: every file or folder of the clone's corpus/ opened or listed in this process."""
    if event not in ("open", "os.listdir", "os.scandir") or not args or isinstance(args[0], int) or args[0] is None:
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))
    except (TypeError, ValueError):
        return
    if path == CORPUS or path.startswith(CORPUS + os.sep):
        _corpus_reads.append(path)


sys.addaudithook(_watch_corpus)


@pytest.fixture(autouse=True)
def _reads_no_corpus(request):
    """Fails the test that read the clone's corpus/ (in its own code or in the setup of a fixture it is the
    first to use): the suite must pass whatever its user added there."""
    yield
    read = _corpus_reads[:]
    _corpus_reads.clear()
    assert not read, f"{request.node.nodeid} read the clone's corpus/ ({read[:3]}); use the tests' own fixtures"

ENGLISH_ARTICLE = """---
title: Shipping lithium batteries to Europe
author: Dana Lee
date: 2024-03-02
source: https://example.com/batteries
---

# Shipping lithium batteries to Europe

Sellers who ship lithium batteries to Europe must label every parcel with the UN3481 mark. Air carriers
refuse loose cells, so batteries travel installed in equipment or packed with it.

Sea freight takes five to six weeks from Shenzhen to Hamburg. It costs about a third of air freight
for the same volume, which makes it the usual choice for bulky stock.

Customs in the EU charge import VAT on arrival unless the seller is registered for IOSS.
"""

HTML_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>退货政策解读 - 跨境资讯网</title>
<meta name="author" content="王芳"><meta property="article:published_time" content="2023-08-15"></head>
<body><nav><a href="/">首页</a> <a href="/news">资讯</a> <a href="/login">登录</a></nav>
<div class="sidebar"><h3>热门文章</h3><ul><li><a href="/a">十大爆款推荐</a></li></ul></div>
<article><h1>退货政策解读</h1>
<p>亚马逊欧洲站从九月起调整了服装类目的退货政策，买家退货的运费将由卖家承担。卖家需要提前在后台设置退货地址，否则系统会自动退款并不要求退货。</p>
<p>对于低价商品，平台建议卖家开启“无需退货即退款”的选项，以节省物流成本。<img src="x" onerror="alert('pwned')"><script>alert('pwned')</script></p>
<p>业内人士认为，新政策会让服装卖家的退货率上升两到三个百分点，利润空间进一步压缩。</p>
</article><footer>版权所有 © 跨境资讯网 京ICP备12345678号</footer></body></html>
"""

GBK_TEXT = "物流旺季提醒\n\n每年十一月到次年一月是海运旺季，港口拥堵导致到货时间延长两周以上。建议卖家提前备货，并为头程物流预留更多时间。"

PDF_PAGES = [
    "Returns report. Apparel sellers saw return rates of 18 percent in 2023.",
    "Electronics returns were lower. Only 6 percent of electronics orders came back to the warehouse.",
]


def make_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    """A real text PDF (Helvetica), one string a page."""
    from pypdf import PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, StreamObject

    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
        stream = StreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def write_library(folder: Path) -> Path:
    """One file of each format, plus an exact duplicate of the Markdown article under another name."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAVED_PAGE, folder / "saved_page.txt")
    (folder / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (folder / "batteries-copy.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (folder / "returns.html").write_text(HTML_PAGE, encoding="utf-8")
    (folder / "peak-season.txt").write_bytes(GBK_TEXT.encode("gbk"))
    make_pdf(folder / "returns-report.pdf", PDF_PAGES)
    records = [
        {"id": "faq-1", "title": "VAT registration", "text": "Sellers storing goods in Germany must register for VAT there before the first sale."},
        {"id": "faq-2", "title": "Product liability", "text": "An authorised representative in the EU is required for CE-marked products."},
    ]
    (folder / "faq.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Path:
    return write_library(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="session")
def seed_bot(tmp_path_factory):
    """The bundled default library (BUNDLED, a copy of what corpus/ ships), indexed; shared, so tests must not
    modify it."""
    from assistant import Assistant, Config

    return Assistant.build(BUNDLED, tmp_path_factory.mktemp("seed-index"), Config())


@pytest.fixture(scope="session")
def built(library, tmp_path_factory):
    """(assistant, index folder, build report) over the fixture library; shared, so tests must not modify it."""
    from assistant import Assistant, Config, index_library

    folder = tmp_path_factory.mktemp("index")
    report = index_library([library], folder, Config())
    return Assistant.open(folder, Config()), folder, report


@pytest.fixture(scope="session")
def pg():
    """One local PostgreSQL server for the session (tests/pg.py), started by the first test that needs it."""
    from pg import LocalPostgres

    server = LocalPostgres().start()
    yield server
    server.stop()


_databases = itertools.count()


@pytest.fixture
def db(pg) -> str:
    """A new, empty database on that server."""
    return pg.createdb(f"db{next(_databases)}")
