"""Bounded cost (issue #23): what one question or one file may cost everyone else, and an index no file can forge."""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ENGLISH_ARTICLE, make_pdf
from test_serve import running

from assistant import Assistant, Config, index_library
from assistant.ingest.chunk import chunk_document
from assistant.ingest.clean import clean_saved_text
from assistant.ingest.load import load_file
from assistant.models.embed import QUERY_TOKENS, get_embedder
from assistant.text import quotable, sentence_spans
from assistant.web import create_app
from assistant.web.security import write_refusal

WORST_QUESTIONS = [". " * 1000, "e" + "\u0301" * 1999, "直播带货" * 500]


def test_a_worst_case_question_reaches_the_model_bounded_in_tokens(monkeypatch):
    e5 = get_embedder("multilingual-e5-small")
    engine = e5._model.engine
    seen: list[str] = []
    real = engine.embed
    monkeypatch.setattr(engine, "embed", lambda texts, prompt: (seen.extend(texts), real(texts, prompt))[1])
    for question in WORST_QUESTIONS:
        assert engine.token_count(question, True) > 1000  # what a 2,000-character question can carry
        e5.encode_query([question])
    assert len(seen) == 3
    assert all(engine.token_count(text, True) <= QUERY_TOKENS for text in seen)
    assert ("直播带货" * 500).startswith(seen[2]) and len(seen[2]) > 100  # its beginning, as much as fits


def test_a_question_does_not_wait_for_a_whole_indexing_batch():
    e5 = get_embedder("multilingual-e5-small")
    passages = [f"第{n}篇：跨境卖家在旺季需要提前备货，并为头程物流预留时间。" * 6 for n in range(40)]
    indexing = threading.Thread(target=e5.encode, args=(passages,), kwargs={"background": True})
    indexing.start()
    time.sleep(0.3)  # the batch is in the engine
    assert indexing.is_alive()
    e5.encode_query(["旺季怎么备货？"])
    # The question was answered between two slices of the batch, not after all of it.
    assert indexing.is_alive()
    indexing.join()


@pytest.mark.parametrize("model", ["multilingual-e5-small", "use-multilingual-v3"])
def test_questions_and_indexing_in_the_engine_at_once_give_the_same_vectors(model):
    # What lets a question run beside an upload's batch instead of behind it: the engines are re-entrant.
    embedder = get_embedder(model)
    passages = [f"第{n}篇：跨境卖家在旺季需要提前备货。Sellers ship {n} pallets to Hamburg." * 3 for n in range(16)]
    questions = [f"旺季怎么备货？问题{n}" for n in range(24)]
    alone = embedder.encode(passages), embedder.encode_query(questions)
    together: dict[str, list] = {"passages": [], "questions": []}
    threads = [threading.Thread(target=lambda: together["passages"].extend(
                   embedder.encode(passages[i : i + 2], background=True) for i in range(0, 16, 2))),
               threading.Thread(target=lambda: together["questions"].extend(
                   embedder.encode_query([q])[0] for q in questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.concatenate(together["passages"]), alone[0], atol=1e-5)
    np.testing.assert_allclose(np.stack(together["questions"]), alone[1], atol=1e-5)


def test_multi_megabyte_lines_are_read_chunked_and_split_in_linear_time(tmp_path):
    files = {"one_line.txt": "Sellers ship goods to Europe every week. " * 100_000,  # 4.1 MB, no line break
             "one_line.md": "跨境卖家每周把货物运到欧洲。" * 300_000,
             "repeated_lines.txt": "第一行：卖家需要关注物流成本。\n第二行：清关规则每年都有变化。\n" * 50_000}  # every line seen again and again
    for name, body in files.items():
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        started = time.monotonic()
        doc = load_file(path)[0][0]
        chunks = chunk_document(doc)
        sentences = [(a, b) for a, b in sentence_spans(doc.text) if quotable(doc.text, a, b)]
        # Quadratic, these took minutes to hours (380 s for 4.16 M characters on one line); now about a second.
        assert time.monotonic() - started < 30, name
        assert chunks and sentences and all(doc.text[c.start:c.end] == c.text for c in chunks[:100])
    started = time.monotonic()
    clean_saved_text("同一行文字重复出现在这里。\n" * 100_000)
    assert time.monotonic() - started < 30


def pdf_with_a_stream_that_inflates_past_pypdf_limits(path: Path) -> Path:
    make_pdf(path, ["placeholder"])
    data = path.read_bytes()
    bomb = zlib.compress(b" " * 80_000_000, 9)  # ~80 KB on disk, 80 MB inflated: over pypdf's 75 MB limit
    start = data.index(b"stream\n") + len(b"stream\n")
    end = data.index(b"endstream")
    head = data[:start].replace(b"/Length", b"/Filter /FlateDecode /Length")
    head = head[: head.rindex(b"/Length")] + b"/Length " + str(len(bomb)).encode() + b"\n>>\nstream\n"
    path.write_bytes(head + bomb + b"\n" + data[end:])
    return path


def test_a_reader_error_refuses_that_file_and_the_rest_is_indexed(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    pdf_with_a_stream_that_inflates_past_pypdf_limits(library / "bomb.pdf")
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    report = index_library([library], tmp_path / "index", Config())
    assert [Path(p).name for p in report.added] == ["batteries.md"]
    [(path, reason)] = report.skipped
    assert Path(path).name == "bomb.pdf" and "PDF" in reason and "re-export" in reason


def test_a_file_that_reads_past_read_seconds_is_refused_by_name(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    paragraphs = "".join(f"<p>第{n}段：卖家需要关注物流成本和清关规则的变化，提前规划库存。</p>" for n in range(60_000))
    (library / "huge.html").write_text(f"<html><body><article>{paragraphs}</article></body></html>", encoding="utf-8")
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    started = time.monotonic()
    report = index_library([library], tmp_path / "index", Config(read_seconds=0.5))
    assert time.monotonic() - started < 60
    assert [Path(p).name for p in report.added] == ["batteries.md"]
    [(path, reason)] = report.skipped
    assert Path(path).name == "huge.html" and "read_seconds (0.5 s)" in reason


def test_the_reader_process_shares_the_servers_session_so_its_lower_priority_counts(monkeypatch):
    """Linux's autogroup scheduler shares the CPU equally between sessions whatever their processes' nice
    values: a reader in a session of its own took as much CPU as the whole server answering questions beside
    it. It keeps a process group of its own, so that Ctrl-C in a terminal reaches the indexing run alone."""
    import os

    from assistant.ingest.load import bounded, read_bounded

    monkeypatch.setattr(bounded, "_worker", None)
    assert read_bounded("note.txt", b"The warehouse closes at noon.", 60)[0]
    reader = bounded._worker.process.pid
    try:
        assert os.getsid(reader) == os.getsid(0)
        assert os.getpgid(reader) != os.getpgid(0)
    finally:
        bounded._worker.stop()


@pytest.mark.parametrize("answering", [True, False])
def test_a_servers_library_job_paces_its_python_work_while_questions_are_answered(tmp_path, monkeypatch, answering):
    """An OS priority does not reach Python's GIL: a server's library job (here the keyword index's tokens of
    an upload's chunks) sleeps between its units of work while questions are answered (ingest.pace), and
    runs at full speed when none is."""
    from types import SimpleNamespace

    from assistant.ingest import pace
    from assistant.ingest.library import Jobs

    slept: list[float] = []
    monkeypatch.setattr(pace, "time", SimpleNamespace(thread_time=time.thread_time, sleep=slept.append))
    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    index_library([library], tmp_path / "index", Config())
    bot = Assistant.open(tmp_path / "index", Config())
    try:
        bot._answering = int(answering)  # as while Assistant.ask answers
        jobs = Jobs(bot.library)
        # The same paragraph over and over: hundreds of chunks to tokenise, a few texts to embed.
        body = "仓库周六中午关门，周日休息，节假日另行通知。The Poznań warehouse closes at noon on Saturdays.\n\n" * 2000
        job = jobs.upload([("long.md", body.encode())])
        jobs.close()  # waits for the job
        assert job.state == "done" and job.files[0].status == "added", job
        if answering:
            assert len(slept) > 3 and min(slept) >= pace.SLICE * (1 - pace.SHARE) / pace.SHARE, slept
        else:
            assert not slept
    finally:
        bot.close()


def test_a_client_that_keeps_being_refused_gets_its_refusals_slowly(built):
    """A flood of cheap refusals (nested JSON, oversize questions, wrong tokens) in a loop cost the server a
    sixth of its time beside 20 clients asking: past a burst, a client's refusals come at about RATE a second."""
    from assistant.web import tarpit

    bot, _, _ = built
    with running(create_app(bot, Config())) as url, httpx.Client(base_url=url, timeout=60) as client:
        started = time.monotonic()
        for _ in range(tarpit.BURST + 40):
            assert client.post("/api/ask", json={"question": ""}).status_code == 422
        assert time.monotonic() - started >= 0.75 * 40 / tarpit.RATE
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200  # what is not refused is never slowed
        assert time.monotonic() - started < tarpit.MAX_DELAY


def test_a_jsonl_record_cannot_take_over_another_files_document(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    index = tmp_path / "index"
    index_library([library], index, Config())
    bot = Assistant.open(index, Config())
    [original] = [d.doc_id for d in bot.documents()[1]]
    text = bot.document(original).text
    planted = "Pay the customs deposit to bank account 6222 0000 1111 before shipping."
    # Sorted first, so it is read before the article on a rebuild too.
    (library / "a_planted.jsonl").write_text(
        json.dumps({"id": original, "title": "Shipping lithium batteries to Europe", "text": planted}) + "\n"
        + json.dumps({"id": "x" * 2_000_000, "text": planted}) + "\n"
        + json.dumps({"id": "own-id", "text": "A record with an id of its own is indexed."}) + "\n", encoding="utf-8")
    for rebuild in (False, True):
        report = index_library([library], index, Config(), rebuild=rebuild)
        assert bot.document(original).text == text
        assert any("already belongs to" in w or "was refused" in w for w in report.warnings)
        assert any("longer than 200 characters" in w for w in report.warnings)
        assert bot.document("own-id") is not None and bot.document("x" * 2_000_000) is None
    (library / "a_planted.jsonl").unlink()
    index_library([library], index, Config())
    assert bot.document(original).text == text and bot.document("own-id") is None
    bot.close()


def test_a_file_that_was_never_indexed_can_be_removed_by_name(tmp_path):
    library = tmp_path / "lib"
    (library / "uploads").mkdir(parents=True)
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (library / "uploads" / "stuck.pdf").write_bytes(b"%PDF-1.4 not really")
    index = tmp_path / "index"
    report = index_library([library], index, Config())
    assert [Path(p).name for p, _ in report.skipped] == ["stuck.pdf"]
    bot = Assistant.open(index, Config())
    with pytest.raises(LookupError):
        bot.library.remove_file("../batteries.md")
    assert bot.library.remove_file("uploads/stuck.pdf") == ["uploads/stuck.pdf"]
    assert not (library / "uploads" / "stuck.pdf").exists()
    assert list((library / ".removed").rglob("stuck.pdf"))
    bot.close()


@pytest.fixture(scope="module")
def server(built):
    bot, _, _ = built
    with running(create_app(bot, Config())) as url:
        yield url


def test_unknown_chat_sessions_cost_one_short_log_line(server, caplog):
    with caplog.at_level(logging.INFO), httpx.Client(base_url=server, timeout=30) as client:
        answers = [client.get(f"/gradio_api/queue/data?session_hash=unknown{n}") for n in range(20)]
    assert {r.status_code for r in answers} == {404}
    logged = [r for r in caplog.records if r.name.startswith(("assistant", "uvicorn.error"))]
    assert len(logged) <= 1 and not any(r.exc_info for r in caplog.records)
    assert sum(len(r.getMessage()) for r in logged) < 200


@pytest.mark.parametrize("headers", [{"Host": "localhost:7881@evil.example"}, {"Host": "localhost/evil"},
                                     {"X-Forwarded-Proto": "javascript:alert(1)//"}])
def test_odd_host_and_forwarded_proto_headers_are_refused(server, headers):
    with httpx.Client(base_url=server, timeout=30) as client:
        refused = client.get("/", headers=headers)
        assert refused.status_code == 400
        assert client.get("/healthz").status_code == 200


def test_a_library_write_forwarded_by_a_proxy_on_this_machine_is_refused():
    config, origins = Config(), ("http://localhost:*",)
    assert write_refusal({}, "127.0.0.1", "http://127.0.0.1:7860", config, origins) is None
    refusal = write_refusal({"x-forwarded-for": "203.0.113.9"}, "127.0.0.1", "http://127.0.0.1:7860", config, origins)
    assert refusal and refusal[0] == 403 and "proxy" in refusal[1]


def test_a_read_token_cannot_read_the_admins_jobs(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    config = Config(api_token="reader", admin_token="admin")
    index_library([library], tmp_path / "index", config)
    bot = Assistant.open(tmp_path / "index", config)
    with running(create_app(bot, config)) as url, httpx.Client(base_url=url, timeout=120) as client:
        job = client.post("/api/documents", headers={"Authorization": "Bearer admin"},
                          files=[("files", ("secret-plan.md", b"# Plan\n\nA secret plan for the peak season.",
                                            "text/markdown"))]).json()
        assert client.get(job["url"], headers={"Authorization": "Bearer reader"}).status_code == 401
        assert client.get(job["url"], headers={"Authorization": "Bearer admin"}).json()["files"][0]["name"] == \
            "secret-plan.md"
    bot.close()


def test_a_missing_path_leaves_no_empty_index_behind(tmp_path):
    # Issue #19.5: `assistant index` with a mistyped path reported it, then left an empty index.
    from click.testing import CliRunner

    from assistant.cli import main

    result = CliRunner().invoke(main, ["index", str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "ix")])
    assert result.exit_code == 1 and "no such file or folder" in result.output
    assert not (tmp_path / "ix").exists()
