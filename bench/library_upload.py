"""Time from upload to answerable: a 20-page PDF and a 5,000-character article added to a small library.

    python bench/library_upload.py

Uses `Assistant.add_files`, the operation behind POST /api/documents (which runs it as a background
job): the file is checked, stored under the library's uploads/, indexed (new text embedded), and
the time runs until a question only that file answers is answered with a citation of it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from assistant import Assistant, Config, index_library

SEED = "---\ntitle: Seed\n---\n\nSea freight from Shenzhen to Hamburg takes five to six weeks.\n"


def pdf_bytes(pages: int) -> bytes:
    """A text PDF of `pages` pages, ~1,200 characters each, every sentence different."""
    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    font_ref = writer._add_object(font)
    for n in range(1, pages + 1):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})})
        lines = [f"Section {n}.{i}: warehouse {n * 7 + i} in region {i} shipped {n * 100 + i * 13} parcels in week {i}."
                 for i in range(1, 16)]
        if n == 20:
            lines[3] = "The Lisbon returns centre charges 4.5 euros per returned parcel from October."
        body = " ".join(f"({line}) Tj T*" for line in lines)
        stream = StreamObject()
        stream.set_data(f"BT /F1 9 Tf 14 TL 40 750 Td {body} ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    out = tempfile.SpooledTemporaryFile()
    writer.write(out)
    out.seek(0)
    return out.read()


def article(chars: int) -> bytes:
    sentences, n = [], 0
    while sum(map(len, sentences)) < chars:
        n += 1
        sentences.append(f"第{n}段：卖家在第{n}个促销周期里调整了{n * 3}个商品的价格，广告预算增加了百分之{n % 40 + 5}。")
    sentences[len(sentences) // 2] = "波兰海关从九月起对低于150欧元的包裹收取固定的清关手续费。"
    return ("---\ntitle: 东欧物流观察\ndate: 2024-09-01\n---\n\n" + "\n".join(sentences)).encode()


def measure(bot: Assistant, name: str, data: bytes, question: str) -> None:
    start = time.perf_counter()
    outcome = bot.add_files([(name, data)])[0]
    indexed = time.perf_counter() - start
    answer = bot.ask(question)
    total = time.perf_counter() - start
    cited = any(c.doc_id in outcome.doc_ids for c in answer.citations)
    print(f"{name}: {len(data) / 1e3:.0f} kB, {outcome.status}; indexed in {indexed:.1f} s, answerable (cited: "
          f"{cited}) after {total:.1f} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp, "library")
        library.mkdir()
        (library / "seed.md").write_text(SEED, encoding="utf-8")
        index_library([library], Path(tmp, "index"), Config())
        bot = Assistant.open(Path(tmp, "index"), Config())
        measure(bot, "report-20-pages.pdf", pdf_bytes(20), "How much does the Lisbon returns centre charge per parcel?")
        text = article(5000)
        measure(bot, "east-europe.md", text, "波兰海关对低于150欧元的包裹收取什么费用？")
        bot.close()


if __name__ == "__main__":
    sys.exit(main())
