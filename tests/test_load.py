"""Reading every format, encoding detection, saved-page cleaning and the bad-file cases."""

from __future__ import annotations

import json

import pytest
from conftest import ENGLISH_ARTICLE, GBK_TEXT, HTML_PAGE, PDF_PAGES, SAVED_PAGE, make_pdf

from assistant.load import LoadError, iter_files, load_file


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


def test_library_walk_skips_hidden_and_unsupported_files(tmp_path):
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    (tmp_path / "b.docx").write_bytes(b"PK")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("x", encoding="utf-8")
    assert [p.name for p in iter_files([tmp_path])] == ["a.md"]
    with pytest.raises(LoadError, match="no such file"):
        list(iter_files([tmp_path / "missing"]))
