"""What a limit cuts from a file is kept and said where the user looks (issue #31, item 6): a file stopped at
`read_seconds` keeps the parts read before it, with a notice naming the setting; the Library list shows a file's
cuts on the folder store and on PostgreSQL. Readers are made slow on purpose in the real reader process."""

from __future__ import annotations

import io
import json

import pytest

from assistant.load import LoadError, bounded, read_bounded

# Each reader made slow per part (slide, cell, paragraph, JSON line) in the reader process, which imports it
# before it serves: the test process's monkeypatching does not reach that process.
SLOW = {
    "pptx": "from assistant.load import office as m; _o = m._shape_texts; "
            "m._shape_texts = lambda s, l: (time.sleep(0.1), _o(s, l))[1]",
    "csv": "from assistant.load import office as m; _o = m._cell; m._cell = lambda v, l: (time.sleep(0.02), _o(v, l))[1]",
    "jsonl": "from assistant.load import jsonl as m; _o = m.lang_of; m.lang_of = lambda t: (time.sleep(0.1), _o(t))[1]",
}


@pytest.fixture
def slow_reader(monkeypatch):
    """Read by a new reader process in which the reader of a format is slow; the process is stopped after."""
    def slow(kind: str) -> None:
        monkeypatch.setattr(bounded._Worker, "code", "import time; " + SLOW[kind] + "; " + bounded._Worker.code)
        if bounded._worker is not None:  # started by this test before: the next read starts a slow one
            bounded._worker.stop()
            bounded._worker = None

    monkeypatch.setattr(bounded, "_worker", None)
    yield slow
    if bounded._worker is not None:
        bounded._worker.stop()


def pptx_file(n: int) -> bytes:
    import pptx

    deck = pptx.Presentation()
    for i in range(1, n + 1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {i}"
        slide.placeholders[1].text = f"Part {i}: the warehouse in Poznań ships {i} pallets a day."
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


FILES = {
    "pptx": (lambda: pptx_file(80), "slides", 80),
    "csv": (lambda: ("part,pallets\n" + "".join(f"Part {i},{i}\n" for i in range(1, 401))).encode(), "rows", 0),
    "jsonl": (lambda: "\n".join(json.dumps({"id": f"p{i}", "text": f"Part {i}: the warehouse ships {i} pallets."})
                                for i in range(1, 81)).encode(), "lines", 80),
}


@pytest.mark.parametrize("kind", list(FILES))
def test_a_file_stopped_at_read_seconds_keeps_the_parts_read_before_it(slow_reader, kind):
    make, unit, total = FILES[kind]
    slow_reader(kind)
    docs, warnings = read_bounded(f"slow.{kind}", make(), 2)
    text = "\n".join(d.text for d in docs)
    assert "Part 1" in text and "Part 80," not in text and "Part 80:" not in text, text[-200:]
    read = len(text.split("Part ")) - 1 + (kind == "csv")  # a .csv's header is a row
    of = f"{read} of {total}" if total else f"the first {read}"
    assert warnings[-1].startswith(f"read {of} {unit}: reading took longer than read_seconds (2 s)"), warnings


def test_a_file_that_gives_nothing_before_read_seconds_is_still_refused_by_name(slow_reader, monkeypatch):
    slow_reader("pptx")
    with pytest.raises(LoadError, match=r"slow\.pptx: reading it took longer than read_seconds \(0\.3 s\)"):
        read_bounded("slow.pptx", pptx_file(80), 0.3)


def test_the_library_list_shows_a_files_cut_on_its_row(slow_reader, tmp_path):
    from conftest import ENGLISH_ARTICLE
    from test_serve import running

    import httpx

    from assistant import Assistant, Config, index_library
    from assistant.web import create_app

    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    config = Config(read_seconds=2)
    index_library([library], tmp_path / "index", config)
    bot = Assistant.open(tmp_path / "index", config)
    try:
        slow_reader("pptx")
        [outcome] = bot.library.add([("deck.pptx", pptx_file(80))])
        assert outcome.status == "added" and "read_seconds (2 s)" in outcome.warnings[-1], outcome
        bot.library.add([("other.md", b"# Other\n\nAnything that makes the library index again.")])  # kept then
        with running(create_app(bot, config)) as url:
            listed = httpx.get(f"{url}/api/documents", timeout=60).json()["documents"]
        row = next(d for d in listed if d["file"] == "deck.pptx")
        assert row["notes"] == outcome.warnings and row["notes"][-1].startswith("read ")
        assert row["notes_zh"][-1].startswith("读取超过 read_seconds（2 秒）后被停止：共 80 张幻灯片，只读了前 ")
        assert all(not d["notes"] for d in listed if d["file"] != "deck.pptx")
    finally:
        bot.close()


@pytest.mark.postgres
def test_a_files_cut_is_kept_with_it_on_postgresql(db, tmp_path, monkeypatch):
    import os

    from assistant import Assistant, Config, index_library
    from assistant.load import office

    monkeypatch.setattr(office, "SHEET_ROWS", 20)  # read in this process (read_seconds 0), to see the limit
    library = tmp_path / "lib"
    library.mkdir()
    (library / "prices.csv").write_text("sku,price\n" + "".join(f"A{i},{i}\n" for i in range(30)))
    (library / "note.md").write_text("# Note\n\nThe Poznań warehouse closes at noon on Saturdays.")
    config = Config(store=db, read_seconds=0)
    index_library([library], None, config)
    os.utime(library / "prices.csv", (1, 1))  # the same bytes at another time: not read again, its cut kept
    index_library([library], None, config)
    bot = Assistant.open(store=db, config=config)
    try:
        _, docs = bot.documents()
        notes = {d.file: (d.notes, d.notes_zh) for d in docs}
        assert notes["prices.csv"] == (["rows of the file past the first 20 with a value were not read (SHEET_ROWS)"],
                                       ["表格超过 20 行（SHEET_ROWS），其余行未读"])
        assert notes["note.md"] == ([], [])
    finally:
        bot.close()

