"""Reading every format, encoding detection, saved-page cleaning and the bad-file cases."""

from __future__ import annotations

import json
import os
import random
import tracemalloc
from pathlib import Path

import pytest
from conftest import ENGLISH_ARTICLE, GBK_TEXT, HTML_PAGE, PDF_PAGES, SAVED_PAGE, make_pdf

from assistant import Config
from assistant.ingest.load import (FIELD_LIMITS, META_KEYS, META_VALUE_CHARS, LoadError, iter_files,
                                   join_wrapped_lines, load_file, read_file)
from assistant.text import sentence_spans


def one(path):
    docs, warnings = load_file(path)
    assert len(docs) == 1 and not warnings
    return docs[0]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_text_encodings_are_detected_from_the_bytes(tmp_path, encoding):
    path = tmp_path / "notes.txt"
    path.write_bytes(GBK_TEXT.encode(encoding))
    doc = one(path)
    assert doc.text == GBK_TEXT
    assert doc.title == "物流旺季提醒"
    assert doc.lang == "zh"


def test_markdown_front_matter_gives_metadata(tmp_path):
    path = tmp_path / "a.md"
    path.write_text(ENGLISH_ARTICLE, encoding="utf-8")
    doc = one(path)
    assert (doc.title, doc.author, doc.date, doc.source) == (
        "Shipping lithium batteries to Europe", "Dana Lee", "2024-03-02", "https://example.com/batteries")
    assert not doc.text.startswith("---") and "UN3481" in doc.text
    assert doc.lang == "en"


def test_markdown_without_front_matter_takes_the_heading_as_title(tmp_path):
    path = tmp_path / "b.md"
    path.write_text("# 选品指南\n\n选品时要看评论数量和评分。", encoding="utf-8")
    assert one(path).title == "选品指南"


def test_html_keeps_the_article_and_drops_page_chrome(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(HTML_PAGE, encoding="utf-8")
    doc = one(path)
    assert doc.title == "退货政策解读"
    assert doc.author == "王芳" and doc.date == "2023-08-15"
    assert "买家退货的运费将由卖家承担" in doc.text and "利润空间进一步压缩" in doc.text
    for chrome in ("登录", "十大爆款推荐", "京ICP备", "alert("):
        assert chrome not in doc.text


def test_saved_page_keeps_one_clean_copy_of_the_body():
    doc = one(SAVED_PAGE)
    assert doc.title.startswith("海外社交电商崛起")
    assert doc.author == "Sylvia Ma"
    assert doc.date == "2020-10-31"
    first_sentence = "近日,短视频应用TikTok宣布与加拿大电商平台Shopify达成合作。"
    assert doc.text.count(first_sentence) == 1, "the body is printed twice on the page but stored once"
    assert "品牌方、商家“all in”直播带货并不是最为理智的选择" in doc.text
    for chrome in ("拖动LOGO到书签栏", "新一轮物流危机来袭", "PDF下载", "扫码添加", "回顶部", "5094"):
        assert chrome not in doc.text


def test_plain_text_is_not_altered(tmp_path):
    text = "Sea freight is slow.\n\nSea freight is slow.\n\nBut it is cheap."  # repeated lines, not a saved page
    path = tmp_path / "n.txt"
    path.write_text(text, encoding="utf-8")
    assert one(path).text == text


def test_pdf_text_remembers_its_pages(tmp_path):
    doc = one(make_pdf(tmp_path / "r.pdf", PDF_PAGES))
    assert doc.pages is not None and len(doc.pages) == 2
    second = doc.text.index("Electronics")
    assert doc.page_at(0) == 1 and doc.page_at(second) == 2
    assert doc.text[doc.pages[1]:].startswith("Electronics")


def test_wrapped_chinese_pdf_lines_are_joined_and_other_breaks_kept():
    page = ("跨境物流旺季提醒\n"
            "每年十一月到次年一月是海运旺季，港口拥堵导致到货时间延长两周以上。建议卖家提前备货，并为头程物\n"
            "流预留更多时间。旺季期间，美国西海岸港口的平均等待时间从三天延长到十天，部分船公司还加收旺季附\n"
            "加费。\n"
            "1.提前三个月下单，并和货代确认舱位，避免在旺季高峰期才开始订舱导致货物积压在工厂的仓库里\n"
            "2.分批发货。\n"
            "Sea freight takes four to six weeks and is the usual choice for bulky stock that is not urgent\n"
            "at all.")
    assert join_wrapped_lines(page).split("\n") == [
        "跨境物流旺季提醒",
        "每年十一月到次年一月是海运旺季，港口拥堵导致到货时间延长两周以上。建议卖家提前备货，并为头程物流预留更多时间。"
        "旺季期间，美国西海岸港口的平均等待时间从三天延长到十天，部分船公司还加收旺季附加费。",
        "1.提前三个月下单，并和货代确认舱位，避免在旺季高峰期才开始订舱导致货物积压在工厂的仓库里",
        "2.分批发货。",
        "Sea freight takes four to six weeks and is the usual choice for bulky stock that is not urgent",
        "at all.",
    ]
    text = join_wrapped_lines(page)
    assert [text[a:b] for a, b in sentence_spans(text) if text.startswith("建议", a)] == [
        "建议卖家提前备货，并为头程物流预留更多时间。"]


def test_jsonl_gives_one_document_a_line_and_reports_bad_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"id": "x1", "title": "T", "text": "Hello sellers.", "lang": "en", "asin": "B01"}),
             "{not json", json.dumps({"id": "x2", "text": "第二条。"})]
    path.write_text("\n".join(lines), encoding="utf-8")
    docs, warnings = load_file(path)
    assert [d.doc_id for d in docs] == ["x1", "x2"]
    assert docs[0].meta == {"asin": "B01"} and docs[1].lang == "zh"
    assert len(warnings) == 1 and warnings[0].startswith("line 2")


@pytest.mark.parametrize("name, content, reason", [
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"  \n\n ", "empty file"),
    ("image.txt", bytes(range(256)) * 8, "binary data"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage", "corrupt"),
    ("lines.jsonl", b"{bad\n[1,2]\n", "no valid JSON lines"),
])
def test_bad_files_are_reported_by_name_with_the_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError) as err:
        load_file(path)
    assert name in str(err.value) and reason in err.value.reason


def test_encrypted_pdf_is_reported(tmp_path):
    path = make_pdf(tmp_path / "secret.pdf", PDF_PAGES, password="s3cret")
    with pytest.raises(LoadError, match="encrypted PDF"):
        load_file(path)


def test_library_walk_skips_hidden_files_and_names_unsupported_ones(tmp_path):
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    (tmp_path / "b.key").write_bytes(b"PK")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("x", encoding="utf-8")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    problems: list[LoadError] = []
    assert [p.name for p in iter_files([tmp_path], problems)] == ["a.md"]
    assert [(Path(p.path).name, p.reason.split(";")[0]) for p in problems] == [("b.key", "not a supported format: .key")]
    with pytest.raises(LoadError, match="no such file"):
        list(iter_files([tmp_path / "missing"]))


# --- Issue #9: files that must not stop or blow up the indexer ------------------------------------


def test_special_files_and_bad_links_are_reported_and_skipped(tmp_path):
    # Issue #9.9: these were skipped silently, and a link out of the library was followed.
    library, outside = tmp_path / "library", tmp_path / "outside"
    (library / "sub").mkdir(parents=True)
    outside.mkdir()
    (library / "a.md").write_text("# A\n\ntext", encoding="utf-8")
    (outside / "secret.txt").write_text("not for the library", encoding="utf-8")
    (library / "sub" / "inside.md").symlink_to(library / "a.md")  # a link within the library: followed
    (library / "leak.txt").symlink_to(outside / "secret.txt")
    (library / "leak-dir").symlink_to(outside)
    (library / "gone.md").symlink_to(library / "missing.md")
    (library / "loop.md").symlink_to(library / "loop.md")
    os.mkfifo(library / "pipe.txt")  # reading it would block the indexer for ever
    problems: list[LoadError] = []
    found = list(iter_files([library], problems))
    assert [p.relative_to(library).as_posix() for p in found] == ["a.md", "sub/inside.md"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert set(reasons) == {"leak.txt", "leak-dir", "gone.md", "loop.md", "pipe.txt"}
    assert "outside the library" in reasons["leak.txt"] and "outside the library" in reasons["leak-dir"]
    assert "does not exist" in reasons["gone.md"] and "loops" in reasons["loop.md"]
    assert "not a regular file" in reasons["pipe.txt"]


def test_a_file_name_that_is_not_utf8_is_reported_printably(tmp_path):
    # Issue #9.3: 'utf-8' codec can't encode '\udce9' stopped the whole run.
    (tmp_path / "ok.md").write_text("# ok\n\ntext", encoding="utf-8")
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.md"), "w") as f:
        f.write("# caf\n\ntext")
    problems: list[LoadError] = []
    assert [p.name for p in iter_files([tmp_path], problems)] == ["ok.md"]
    assert len(problems) == 1 and problems[0].path.endswith("caf\\xe9.md") and "not valid UTF-8" in problems[0].reason
    str(problems[0]).encode("utf-8")  # printable


def test_a_file_over_max_file_mb_is_refused_before_it_is_read(tmp_path):
    # Issue #9.4: a 200 MB text file needed > 6 GB. A sparse file: 200 MB that take no disk.
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(200_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match=r"200\.0 MB, larger than max_file_mb \(50 MB\)"):
            read_file(path, Config().max_file_mb)
        with pytest.raises(LoadError, match="max_file_mb"):
            load_file(path)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()


def load_traced(path):
    """`load_file(path)` and the peak of Python's allocations while it ran."""
    tracemalloc.start()
    try:
        result = load_file(path)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_a_large_text_costs_a_few_times_its_size(tmp_path):
    # Issue #9.4: the language check cost ~85 bytes a character of non-repeating Chinese text.
    rng = random.Random(0)
    words = ["".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 4))) for _ in range(50_000)]
    path = tmp_path / "big.txt"
    path.write_text("".join(rng.choice(words) + ("。" if rng.random() < 0.07 else "") for _ in range(300_000)),
                    encoding="utf-8")
    (docs, _), peak = load_traced(path)
    assert docs[0].lang == "zh"
    assert peak < 8 * path.stat().st_size, f"{peak / path.stat().st_size:.1f} bytes per byte of the file"


def test_a_yaml_alias_bomb_in_front_matter_stays_small(tmp_path):
    # Issue #9.4: a 1.7 KB front matter whose title expands through aliases needed > 6 GB.
    levels = ['a0: &a0 "' + "x" * 100 + '"'] + [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]"
                                                 for n in range(1, 7)]
    path = tmp_path / "bomb.md"
    front = "\n".join([*levels, "title: *a6", "author: *a6", "tags: *a1"])
    path.write_text(f"---\n{front}\n---\n\n# Real title\n\nBody text.", encoding="utf-8")
    assert path.stat().st_size < 2000
    (docs, warnings), peak = load_traced(path)
    assert peak < 20_000_000  # the title alone would be ~100 MB of text
    doc = docs[0]
    assert doc.title == "Real title" and doc.author == ""
    assert any("'title' is not text" in w for w in warnings)
    assert len(doc.meta["tags"]) <= 1000 and doc.meta["tags"].startswith("xxx")


def test_metadata_fields_have_length_limits(tmp_path):
    # Issue #9.4: a 30k-character JSONL title cost 1.2 GB (titles are embedded with every chunk).
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "d1", "title": "标题" * 15_000, "author": "a" * 5_000, "source": "s" * 9_000,
                                "text": "正文内容。" * 10, **{f"k{i}": "v" * 5_000 for i in range(80)}}) + "\n",
                    encoding="utf-8")
    (doc,), warnings = load_file(path)
    assert len(doc.title) == FIELD_LIMITS["title"] and doc.title.endswith("…")
    assert len(doc.author) == FIELD_LIMITS["author"] and len(doc.source) == FIELD_LIMITS["source"]
    assert len(doc.meta) == META_KEYS and all(len(v) <= META_VALUE_CHARS for v in doc.meta.values())
    assert any("title is 30000 characters long" in w for w in warnings)
