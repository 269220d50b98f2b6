"""Office files, screenshots and scans (issue #20): each made here with the library that writes it, indexed,
asked about, and cited by sheet and row, slide or page; their limits and bad-file cases."""

from __future__ import annotations

import csv
import datetime
import io
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from conftest import make_pdf

from assistant import Assistant, Config, index_library
from assistant.document import LAYOUT
from assistant.ingest.load import LoadError, images, load_file, office, pdf

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
ZH_LINE = "日本站的退货期限是买家收货后三十天内。"
EN_LINE = "Customs clearance in Rotterdam takes about three working days."


def render(lines: list[str], width: int = 720, size: int = 26):
    """A screenshot of `lines`: black text on white, one line each."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, size)
    image = Image.new("RGB", (width, 24 + int(size * 1.9) * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((20, 12 + int(size * 1.9) * i), line, font=font, fill="black")
    return image


def write_docx(path: Path) -> Path:
    import docx

    word = docx.Document()
    word.core_properties.title = "德国海外仓指南"
    word.core_properties.author = "李明"
    word.core_properties.created = datetime.datetime(2013, 12, 23, 23, 15)  # the template's: never the date
    word.core_properties.modified = datetime.datetime(2024, 5, 6, 9, 30)  # when it was last saved
    word.add_heading("德国海外仓指南", 1)
    word.add_paragraph("在德国租用海外仓的月租金约为每立方米18欧元，旺季上浮两成。")
    word.add_paragraph("提前三个月预订仓位", style="List Bullet")
    table = word.add_table(rows=3, cols=2)
    for r, (city, rent) in enumerate([("城市", "仓库租金"), ("法兰克福", "每立方米21欧元"), ("柏林", "每立方米19欧元")]):
        table.cell(r, 0).text, table.cell(r, 1).text = city, rent
    word.add_paragraph("The warehouse closes at 6 pm on Saturdays.")
    word.save(path)
    return path


def write_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "时效"
    sheet.append(["目的地", "天数"])
    sheet.append(["洛杉矶", 18])
    fees = book.create_sheet("运费")
    fees.append(["2024 物流费用表"])
    fees.append(["目的地", "运输方式", "费用"])
    fees.append(["汉堡", "空运", "9800元"])
    fees.append(["汉堡", "海运", "3200元"])
    fees.append(["洛杉矶", "海运", 2600.0])
    book.save(path)
    return path


def write_csv(path: Path) -> Path:
    with open(path, "w", newline="", encoding="gbk") as f:  # as Excel saves a .csv on a Chinese Windows
        writer = csv.writer(f)
        writer.writerow(["sku", "product", "price"])
        writer.writerow(["K-101", "steel water bottle", "8.50 USD"])
        writer.writerow(["K-102", "bamboo cutting board", "12.90 USD"])
    return path


def write_pptx(path: Path) -> Path:
    from pptx import Presentation

    deck = Presentation()
    deck.core_properties.author = "王芳"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "第一季度复盘"
    slide.placeholders[1].text = "销售额比去年同期增长了百分之二十。"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "下季度计划"
    slide.placeholders[1].text = "重点开拓新市场\n扩充仓储"
    slide.notes_slide.notes_text_frame.text = "演讲时强调：波兰站的平台佣金比例是百分之七。"
    deck.save(path)
    return path


def write_scan(path: Path, tmp: Path) -> Path:
    """A two-page PDF: page 1 has a text layer, page 2 is a scanned image of text with none."""
    from pypdf import PdfReader, PdfWriter

    image = render(["Port notes", EN_LINE], width=900)
    scanned = io.BytesIO()
    image.save(scanned, "PDF", resolution=100)
    writer = PdfWriter()
    writer.append(PdfReader(make_pdf(tmp / "text.pdf", ["Shipping notes. Pallets must not exceed 1.8 metres."])))
    writer.append(PdfReader(scanned))
    with open(path, "wb") as f:
        writer.write(f)
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("formats")
    write_docx(folder / "warehouses.docx")
    write_xlsx(folder / "fees.xlsx")
    write_csv(folder / "catalog.csv")
    write_pptx(folder / "review.pptx")
    render(["10:24  跨境卖家群", ZH_LINE]).save(folder / "screenshot.png")
    write_scan(folder / "port-notes.pdf", tmp_path_factory.mktemp("scan"))
    (folder / "pitch.key").write_bytes(b"PK\x03\x04 a Keynote deck")
    return folder


@pytest.fixture(scope="module")
def built(library, tmp_path_factory):
    folder = tmp_path_factory.mktemp("index")
    report = index_library([library], folder, Config())
    bot = Assistant.open(folder, Config())
    yield bot, report
    bot.close()


def cited(bot, question: str, file: str, needle: str):
    """The citation of `file` whose quote holds `needle` in the answer to `question`, checked to be an
    exact slice of its stored document; with that document."""
    answer = bot.ask(question)
    assert not answer.declined, (question, answer.text)
    for c in answer.citations:
        doc = bot.document(c.doc_id)
        assert c.quote == doc.text[c.start:c.end]
        if Path(doc.path).name == file and needle in c.quote:
            return c, doc
    raise AssertionError(f"{question}: no citation of {file} quoting {needle!r}: {answer.text}")


def test_every_new_format_is_indexed_and_an_unsupported_file_is_named(built):
    _, report = built
    assert sorted(Path(p).name for p in report.added) == [
        "catalog.csv", "fees.xlsx", "port-notes.pdf", "review.pptx", "screenshot.png", "warehouses.docx"]
    assert [(Path(p).name, reason.split(";")[0]) for p, reason in report.skipped] == [
        ("pitch.key", "not a supported format: .key")]


def test_a_word_file_is_answered_with_its_title_author_and_date(built):
    bot, _ = built
    c, doc = cited(bot, "德国海外仓的月租金是多少？", "warehouses.docx", "18欧元")
    assert (doc.title, doc.author, doc.date) == ("德国海外仓指南", "李明", "2024-05-06")
    assert "- 提前三个月预订仓位" in doc.text  # a list item keeps its marker
    assert "城市: 柏林 | 仓库租金: 每立方米19欧元" in doc.text  # a table row carries its headers
    assert doc.text.index("18欧元") < doc.text.index("柏林") < doc.text.index("Saturdays")  # reading order


def test_a_workbook_row_is_cited_by_sheet_and_row(built):
    bot, _ = built
    c, doc = cited(bot, "海运到汉堡的费用是多少？", "fees.xlsx", "3200元")
    assert c.quote == "目的地: 汉堡 | 运输方式: 海运 | 费用: 3200元"
    assert doc.location(c.start) == {"sheet": "运费", "row": 4}
    assert c.page == 2  # the second sheet: a chunk never crosses a sheet
    assert "费用: 2600" in doc.text and "2600.0" not in doc.text


def test_a_csv_row_is_cited_by_row(built):
    bot, _ = built
    c, doc = cited(bot, "What does the bamboo cutting board cost?", "catalog.csv", "12.90")
    assert c.quote == "sku: K-102 | product: bamboo cutting board | price: 12.90 USD"
    assert doc.location(c.start) == {"sheet": "catalog", "row": 3}


def test_a_slide_and_its_notes_are_cited_by_slide(built):
    bot, _ = built
    c, doc = cited(bot, "波兰站的平台佣金比例是多少？", "review.pptx", "百分之七")
    assert doc.location(c.start) == {"slide": 2} and c.page == 2
    assert doc.title == "第一季度复盘" and doc.author == "王芳"


def test_a_screenshot_is_read_by_ocr_and_its_lines_keep_their_boxes(built):
    bot, _ = built
    c, doc = cited(bot, "日本站的退货期限是多久？", "screenshot.png", "三十天")
    assert doc.location(c.start) == {"page": 1}
    (page,) = doc.meta[LAYOUT]["ocr"]
    assert (page["page"], page["width"]) == (1, 720)
    (a, b, box), = [(a, b, box) for a, b, box in page["lines"] if a < c.end and c.start < b]  # the quoted line
    assert doc.text[a:b] == ZH_LINE
    xs, ys = box[0::2], box[1::2]
    assert 0 <= min(xs) < 0.1 and 0.5 < max(ys) <= 1  # the second of two lines, from the left edge


def test_a_scanned_pdf_page_is_read_by_ocr_beside_a_page_with_text(built):
    bot, _ = built
    c, doc = cited(bot, "How long does customs clearance in Rotterdam take?", "port-notes.pdf", "three working days")
    assert doc.location(c.start) == {"page": 2}
    assert doc.text.startswith("Shipping notes. Pallets must not exceed 1.8 metres.")  # page 1's text layer
    (page,) = doc.meta[LAYOUT]["ocr"]
    assert page["page"] == 2 and any(doc.text[a:b] == EN_LINE for a, b, _ in page["lines"])


def test_ocr_reports_its_progress_page_by_page_from_the_reading_process(library):
    from assistant.ingest.load import read_bounded

    scan = library / "port-notes.pdf"
    pages: list[tuple[int, int]] = []
    (doc,), _ = read_bounded(scan, scan.read_bytes(), 120, on_page=lambda done, total: pages.append((done, total)))
    assert pages == [(1, 1)] and EN_LINE in doc.text  # one page without a text layer, read by the worker


def _accuracy(got: str, want: str) -> float:
    """1 - the edit distance over the length of the text OCR should have read."""
    row = list(range(len(got) + 1))
    for i, w in enumerate(want, 1):
        prev, row[0] = row[0], i
        for j, g in enumerate(got, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (w != g))
    return 1 - row[-1] / len(want)


def test_ocr_reads_the_characters_of_a_rendered_chinese_and_english_page():
    # A page as a scan of A4 at 150 dpi is rendered for OCR: 24 lines at 11 pt, scaled as pdf.RENDER_SIDE
    # scales it. With rapidocr's line-direction classifier on, 2 of these 12 English lines came out
    # upside down ("Se  t ts e u e s   t wut s e selr"): the classifier is off.
    from PIL import Image, ImageDraw, ImageFont

    zh = "跨境电商卖家在旺季需要提前备货，海运到汉堡的时效约为三十五天，空运约为七天，费用相差三倍。"
    en = "Sellers who ship lithium batteries to Europe must label every parcel with the UN3481 mark."
    font = ImageFont.truetype(FONT, 22)
    page = Image.new("RGB", (1240, 1590), "white")
    draw = ImageDraw.Draw(page)
    for i in range(24):
        draw.text((100, 100 + 60 * i), zh if i % 2 == 0 else en, font=font, fill="black")
    text, lines = images.ocr_page(page.resize((1414, 1813)))
    read = text.split("\n")
    assert len(read) == len(lines) == 24
    for language, want in (("Chinese", zh), ("English", en)):
        got = [line for line in read if (line[:1] == want[:1])]
        accuracy = sum(_accuracy(line, want) for line in got) / 12 if len(got) == 12 else 0
        print(f"OCR character accuracy, {language}: {accuracy:.4f} over {12 * len(want)} characters")
        assert accuracy >= 0.95, (language, read)


# --- limits and bad files: cheap, no OCR ----------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height pixels and holds a few bytes: what a decompression bomb looks like."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7_000, 60_000])  # past MAX_PIXELS; past Pillow's own bomb limit too
def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(side, side))
    with pytest.raises(LoadError, match="decompression bomb"):
        load_file(path)


def test_an_office_zip_bomb_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("word/document.xml", "w") as f:
        for _ in range(office.UNPACKED_MB + 1):
            f.write(b" " * 1_000_000)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(LoadError, match="MB or more once unpacked, more than the 100 MB"):
        load_file(path)


@pytest.mark.parametrize("name, reason", [
    ("a.docx", "not a readable Word file"), ("a.xlsx", "not a readable Excel file"),
    ("a.pptx", "not a readable PowerPoint file"), ("a.png", "not a readable PNG, JPEG or WebP image"),
    ("a.jpg", "not a readable PNG, JPEG or WebP image"),
])
def test_a_corrupt_file_of_a_new_format_is_refused_with_the_reason(tmp_path, name, reason):
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 this is not what it says")
    with pytest.raises(LoadError) as err:
        load_file(path)
    assert name in str(err.value) and reason in err.value.reason


@pytest.mark.parametrize("name, kind", [("a.docx", "Word"), ("a.xlsx", "Excel"), ("a.pptx", "PowerPoint")])
def test_a_zip_that_is_not_the_office_file_it_says_is_refused_by_the_reader(tmp_path, name, kind):
    # A valid zip archive without the parts of that format: the reading library's own error becomes the refusal.
    path = tmp_path / name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("notes.txt", "not an Office document")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(LoadError) as err:
        load_file(path)
    assert name in str(err.value) and f"corrupt or unsupported {kind} file" in err.value.reason


def test_sheets_rows_cells_and_slides_are_bounded_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(office, "SHEET_ROWS", 3)
    monkeypatch.setattr(office, "ROW_CELLS", 2)
    monkeypatch.setattr(office, "SLIDES", 1)
    path = tmp_path / "long.csv"
    path.write_text("a,b,c\n" + "".join(f"{n},x,y\n" for n in range(10)), encoding="utf-8")
    (doc,), warnings = load_file(path)
    assert doc.text == "a | b\n\na: 0 | b: x\n\na: 1 | b: x"
    assert any("(SHEET_ROWS)" in w for w in warnings) and any("(ROW_CELLS)" in w for w in warnings)
    (doc,), warnings = load_file(write_pptx(tmp_path / "deck.pptx"))
    assert doc.pages == [0] and "波兰" not in doc.text and any("(SLIDES)" in w for w in warnings)


def test_with_ocr_off_images_and_scans_are_refused_saying_how_to_switch_it_on(tmp_path):
    shot = tmp_path / "shot.png"
    render(["hello"]).save(shot)
    with pytest.raises(LoadError, match=r"switched off \(ocr = false\)"):
        load_file(shot, ocr=False)
    scan = tmp_path / "scan.pdf"
    render(["hello"]).save(scan, "PDF")
    with pytest.raises(LoadError, match=r"switch OCR on \(ocr = true\)"):
        load_file(scan, ocr=False)


def test_a_garbled_text_layer_is_not_taken_for_text():
    assert pdf._usable("Returns report 2023")
    assert not pdf._usable("   \n ")
    assert not pdf._usable("\ue000\ue001\ue002\ue003 \ufffd\ufffd ab")  # a font without a Unicode map


def test_a_page_ocr_cannot_read_is_named_and_the_rest_goes_on(tmp_path, monkeypatch):
    scan = tmp_path / "scan.pdf"
    pages = [render([f"page {n}"], width=200) for n in (1, 2, 3)]
    pages[0].save(scan, "PDF", save_all=True, append_images=pages[1:])
    calls = []

    def ocr_page(image):
        calls.append(image.size)
        if len(calls) == 1:
            raise RuntimeError("model failed")
        return f"text of page {len(calls)}", []
    monkeypatch.setattr(images, "ocr_page", ocr_page)
    (doc,), warnings = load_file(scan)
    assert warnings == ["page 1: OCR could not read it (RuntimeError: model failed)"]
    assert doc.text == "\n\ntext of page 2\n\ntext of page 3" and doc.page_at(doc.text.index("page 3")) == 3


    def slow_ocr_page(image):
        calls.append(image.size)
        time.sleep(0.2)
        return "text", []
    calls.clear()
    monkeypatch.setattr(images, "ocr_page", slow_ocr_page)
    (doc,), warnings = load_file(scan, ocr_seconds=0.1)  # the time is up after the first page
    assert len(calls) == 1 and doc.text.startswith("text")
    assert warnings == ["read 1 of 3 pages without a text layer by OCR: reading stopped at its share of read_seconds; "
                        "pages 2–3 were not read: split the PDF, or raise read_seconds"]
