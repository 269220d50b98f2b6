"""The PostgreSQL + pgvector store against a real PostgreSQL 18 server on 127.0.0.1 (tests/pg.py).

Most tests copy the shared fixture index folder into a fresh database (`assistant copy-index`),
so that nothing is embedded twice; the first one indexes through PostgreSQL itself.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from click.testing import CliRunner

from assistant import Assistant, Config, index_library
from assistant.cli import main
from assistant.store import postgres as pgstore
from assistant.store.base import IndexBusy
from assistant.store.factory import copy_library, open_store

from pg import LocalPostgres, bin_dir, free_port

pytestmark = pytest.mark.postgres

QUERIES = ["海运旺季", "How long does sea freight from Shenzhen to Hamburg take?", "退货运费由谁承担？",
           "battery labels UN3481", "18 percent returns 2023", "VAT registration Germany"]
NEW_ARTICLE = "# Temu in Poland\n\nTemu opened a warehouse near Poznań in 2024 to cut delivery times in Poland."
_names = itertools.count()


@pytest.fixture
def copied(built, db) -> str:
    """A database holding a copy of the fixture library's index folder."""
    source, target = open_store(Config(), built[1], serving=True), open_store(Config(store=db))
    copy_library(source, target)
    source.close()
    target.close()
    return db


def ranked(bot: Assistant, query: str, mode: str = "hybrid") -> list[tuple[str, int, float]]:
    return [(h.doc_id, h.start, h.score) for h in bot.search(query, k=5, mode=mode)]


def same(a: list[tuple[str, int, float]], b: list[tuple[str, int, float]]) -> bool:
    """The same passages in the same order, scores equal up to float32 rounding (pgvector vs FAISS)."""
    return [x[:2] for x in a] == [x[:2] for x in b] and all(abs(x[2] - y[2]) < 1e-5 for x, y in zip(a, b))


def test_index_ask_and_search_through_postgres(built, library, db):
    folder_bot, _, folder_report = built
    report = index_library([library], None, Config(store=db))
    assert (report.documents, report.chunks) == (folder_report.documents, folder_report.chunks)
    again = index_library([library], None, Config(store=db))
    assert len(again.unchanged) == len(report.added) and again.chunks_embedded == 0 and not again.added

    bot = Assistant.open(store=db, config=Config())
    for query in QUERIES:
        for mode in ("keyword", "dense", "hybrid"):
            assert same(ranked(bot, query, mode), ranked(folder_bot, query, mode)), (query, mode)
    answer = bot.ask("How long does sea freight from Shenzhen to Hamburg take?")
    assert not answer.declined and "five to six weeks" in answer.text
    assert answer.text == folder_bot.ask("How long does sea freight from Shenzhen to Hamburg take?").text
    for c in answer.citations:
        assert bot.document(c.doc_id).text[c.start:c.end] == c.quote
    assert bot.ask("How do I bake a chocolate cake?").declined
    # The library view lists the same documents, newest first, with their chunk counts.
    total, rows = bot.index.store.document_list("", 0, 50)
    folder_total, folder_rows = folder_bot.index.store.document_list("", 0, 50)
    assert total == folder_total and {r[0]: r[6] for r in rows} == {r[0]: r[6] for r in folder_rows}
    assert all(r[7] for r in rows) and bot.index.store.document_list("shipping", 0, 50)[0] == 1

    result = CliRunner().invoke(main, ["search", "battery labels", "--store", db, "--json", "-k", "1"])
    assert result.exit_code == 0 and "Shipping lithium batteries" in result.output
    bot.close()


def test_keyword_scores_are_fts5_bm25(built, copied):
    """Same BM25 as SQLite FTS5, to the float: the fusion and thresholds tuned on one hold on the other."""
    folder, pg = open_store(Config(), built[1], serving=True), open_store(Config(store=copied), serving=True)
    assert pg.counts() == folder.counts()
    places = {}
    for store in (folder, pg):
        places[store] = {i: (c.doc_id, c.start) for i, c in store.chunks(store.chunk_vectors()[0].tolist()).items()}
    # "sea.freight" is one term that FTS5 splits into a phrase; "un3481" mixes letters and digits.
    for terms in (["海运", "旺季"], ["battery", "un3481"], ["vat", "germany", "seller"], ["2023", "percent"],
                  ["sea.freight"], ["卖家", "退货", "运费"], ["nothing-like-this"]):
        got = {s: [(places[s][i], score) for i, score in s.keyword_search(terms, 50)] for s in (folder, pg)}
        assert [p for p, _ in got[pg]] == [p for p, _ in got[folder]], terms
        assert [s for _, s in got[pg]] == pytest.approx([s for _, s in got[folder]], rel=1e-9), terms
        assert pg.document_frequency(terms) == folder.document_frequency(terms)
    # A hybrid search's dense candidates are scored beside the best few: the same scores, in one query.
    for store in (folder, pg):
        scores = dict(store.keyword_search(["vat", "germany", "seller"], 50))
        best, *rest = sorted(scores, key=scores.get, reverse=True)
        assert dict(store.keyword_search(["vat", "germany", "seller"], 1, also=rest)) == pytest.approx(scores)
        assert store.keyword_search(["vat"], 1, also=[max(places[store]) + 1]) == store.keyword_search(["vat"], 1)
    folder.close()
    pg.close()


def test_past_the_threshold_dense_search_uses_an_hnsw_index(built, db, monkeypatch):
    monkeypatch.setattr(pgstore, "HNSW_MIN_CHUNKS", 5)
    source, target = open_store(Config(), built[1], serving=True), open_store(Config(store=db))
    copy_library(source, target)
    vector = source.chunk_vectors()[1][0]
    target._rows("SET enable_seqscan = off")  # at 22 rows a scan is cheaper; what matters is that the index fits
    plan = "\n".join(r[0] for r in target._rows(
        f"EXPLAIN SELECT id FROM chunks ORDER BY embedding::vector({len(vector)}) <#> %s::vector({len(vector)}) "
        "LIMIT 50", (vector,)))
    assert "chunks_hnsw" in plan
    exact = source.dense_search(vector, 5)
    assert target.dense_search(vector, 5)[0][1] == pytest.approx(exact[0][1], abs=1e-5)
    source.close()
    target.close()


def test_one_indexing_run_at_a_time(copied, library, tmp_path):
    for config, folder in ((Config(store=copied), None), (Config(), tmp_path / "ix")):
        holder = open_store(config, folder)
        with holder.indexing():
            with pytest.raises(IndexBusy, match="another `assistant index` is running"):
                index_library([library], folder, config)
            if folder is None:
                result = CliRunner().invoke(main, ["index", str(library), "--store", copied])
                assert result.exit_code != 0 and "wait for it to finish" in result.output
        holder.close()
    assert index_library([library], None, Config(store=copied)).readable  # released: the next run goes


def _serve(uri: str, port: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--store", uri, "--port", str(port)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_ready(proc: subprocess.Popen, base: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the server did not start")


def _titles(base: str, query: str) -> set[str]:
    response = httpx.get(base + "/api/search", params={"q": query, "k": 3}, timeout=60)
    assert response.status_code == 200, response.text
    return {h["title"] for h in response.json()["hits"]}


def test_two_servers_on_one_database_see_new_and_removed_documents(copied, library, tmp_path):
    ports = [free_port(), free_port()]
    servers = [_serve(copied, p) for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for proc, base in zip(servers, bases):
            _wait_ready(proc, base)
        assert all("Temu in Poland" not in _titles(b, "Temu warehouse Poznań") for b in bases)
        extra = tmp_path / "extra"
        extra.mkdir()
        (extra / "temu.md").write_text(NEW_ARTICLE, encoding="utf-8")

        index_library([library, extra], None, Config(store=copied))
        assert all("Temu in Poland" in _titles(b, "Temu warehouse Poznań") for b in bases), "seen without a restart"
        assert all(httpx.get(b + "/healthz").json()["documents"] == 8 for b in bases)

        index_library([library], None, Config(store=copied))
        assert all("Temu in Poland" not in _titles(b, "Temu warehouse Poznań") for b in bases), "gone for every server"
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGINT)
        for proc in servers:
            proc.wait(timeout=30)


def test_an_indexing_run_killed_midway_leaves_the_old_library_answering(copied, library, tmp_path):
    bot = Assistant.open(store=copied, config=Config())
    before = {q: ranked(bot, q) for q in QUERIES}
    counts = bot.index.store.counts()
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "temu.md").write_text(NEW_ARTICLE, encoding="utf-8")
    # A real kill -9 of the indexing process inside its transaction, after part of the change is written.
    script = textwrap.dedent(f"""
        import os, signal
        from assistant import Config, index_library
        from assistant.store.postgres import PostgresStore
        original = PostgresStore.add_document
        def add_then_die(self, *args):
            original(self, *args)
            os.kill(os.getpid(), signal.SIGKILL)
        PostgresStore.add_document = add_then_die
        index_library([{str(library)!r}, {str(extra)!r}], None, Config(store={copied!r}))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]

    assert bot.index.store.counts() == counts
    assert {q: ranked(bot, q) for q in QUERIES} == before
    assert "Temu in Poland" not in {h.title for h in bot.search("Temu warehouse Poznań", k=3)}
    # The lock died with the process, and the embeddings it had made were kept.
    report = index_library([library, extra], None, Config(store=copied))
    assert report.added and report.chunks_embedded == 0
    assert "Temu in Poland" in {h.title for h in bot.search("Temu warehouse Poznań", k=3)}
    bot.close()


def test_a_hot_standby_answers_queries(pg, copied, library, tmp_path):
    if not (bin_dir() / "pg_basebackup").is_file():
        pytest.skip("this PostgreSQL build has no pg_basebackup")
    standby = LocalPostgres(primary=pg).start()
    try:
        replica = standby.uri(copied.rsplit("/", 1)[1])
        bot = Assistant.open(config=Config(store=copied, store_readonly=replica))
        assert bot.index.store._rows("SELECT pg_is_in_recovery()")[0][0], "queries go to the standby"
        answer = bot.ask("How long does sea freight from Shenzhen to Hamburg take?")
        assert not answer.declined and "five to six weeks" in answer.text

        extra = tmp_path / "extra"
        extra.mkdir()
        (extra / "temu.md").write_text(NEW_ARTICLE, encoding="utf-8")
        index_library([library, extra], None, Config(store=copied, store_readonly=replica))  # writes to the primary
        deadline = time.monotonic() + 30
        while "Temu in Poland" not in {h.title for h in bot.search("Temu warehouse Poznań", k=3)}:
            assert time.monotonic() < deadline, "the standby never replayed the indexing run"
            time.sleep(0.2)
        bot.close()
    finally:
        standby.stop()


def test_copy_index_command_and_clear_errors(built, db, pg):
    result = CliRunner().invoke(main, ["copy-index", "--index", str(built[1]), "--store", db])
    assert result.exit_code == 0, result.output
    assert f"{built[2].documents} documents copied" in result.output
    bot = Assistant.open(store=db, config=Config())
    assert same(ranked(bot, "battery labels UN3481"), ranked(built[0], "battery labels UN3481"))
    bot.close()

    empty = pg.createdb(f"empty{next(_names)}")
    with pytest.raises(FileNotFoundError, match="assistant index --store"):
        Assistant.open(store=empty, config=Config())
    with pytest.raises(ConnectionError, match="cannot reach PostgreSQL"):
        Assistant.open(store=f"postgresql://postgres@127.0.0.1:{free_port()}/x", config=Config())
    with pytest.raises(ValueError, match="store='mysql://x'"):
        Config(store="mysql://x")
    result = CliRunner().invoke(main, ["ask", "hello", "--store", empty])
    assert result.exit_code != 0 and "build one first" in result.output


def test_a_postgresql_server_does_not_load_the_folder_store():
    """A server on PostgreSQL needs neither the SQLite store nor FAISS (its native library and threads)."""
    code = "import sys, assistant.web, assistant.store.postgres; print(sorted({'faiss', 'assistant.store.folder'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
