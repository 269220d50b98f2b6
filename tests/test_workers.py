"""Ingest workers (`assistant worker`) on a real PostgreSQL 18 server (tests/pg.py): jobs queued in the
database, shared by workers, taken again after a worker dies, answered by a server started with --no-ingest."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest
from test_serve import running

from assistant import Assistant, Config, index_library
from assistant.ingest.jobs import PostgresJobs
from assistant.ingest.worker import Worker
from assistant.store.factory import open_store
from assistant.web import create_app


pytestmark = pytest.mark.postgres

CONFIG = Config()
def note(i: int) -> tuple[str, bytes]:
    return f"note{i}.md", f"# Warehouse note {i}\n\nWarehouse {i} ships parcel batch {i * 7} to port {i}.".encode()


def start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def finished(queue: PostgresJobs, ids: list[str], limit: float = 600) -> list:
    deadline = time.monotonic() + limit
    while True:
        jobs = [queue.get(i) for i in ids]
        if all(j.state in ("done", "failed") for j in jobs):
            return jobs
        assert time.monotonic() < deadline, [(j.id, j.state) for j in jobs]
        time.sleep(0.2)


def consistent(db: str) -> dict[str, list[str]]:
    """The library's files ({key: doc ids}), checked whole: every document held by a file, none twice, the
    counts kept for readers equal to the rows."""
    store = open_store(Config(store=db))
    try:
        files = {k: ids for k, (*_rest, ids) in store.files().items()}
        (added,), = store._rows("SELECT count(*) FROM document_added")
        (docs,), = store._rows("SELECT count(*) FROM documents")
        (chunks,), = store._rows("SELECT count(*) FROM chunks")
        assert not store.orphan_doc_ids()
        assert added == docs == len({d for ids in files.values() for d in ids})
        assert store.counts() == {"files": len(files), "documents": docs, "chunks": chunks}
        return files
    finally:
        store.close()


def test_two_workers_share_the_queue_and_do_each_job_once(db):
    workers = [Worker(db, CONFIG, poll=0.1, name=f"w{i}") for i in range(2)]
    queue = PostgresJobs(db)
    ids = [queue.upload([note(i)]).id for i in range(20)]
    threads = [start(w) for w in workers]
    try:
        jobs = finished(queue, ids)
    finally:
        for w in workers:
            w.stopping.set()
        for t in threads:
            t.join(60)
    assert [j.state for j in jobs] == ["done"] * 20 and all(j.files[0].status == "added" for j in jobs)
    with queue._pool.connection() as conn:
        rows = conn.execute("SELECT worker, attempts FROM jobs").fetchall()
        (left,), = conn.execute("SELECT count(*) FROM job_files").fetchall()
    assert {a for _, a in rows} == {1}, "a job was taken twice"
    assert {w for w, _ in rows} == {"w0", "w1"}, "one worker did every job"
    assert left == 0
    files = consistent(db)
    assert set(files) == {f"upload://{j.id}/note{i}.md" for i, j in enumerate(jobs)}
    assert all(len(ids) == 1 for ids in files.values())
    queue.close()


def test_the_lease_of_a_job_being_done_is_renewed(db, monkeypatch):
    """A job that takes longer than the lease stays with its worker: the other one does not take it."""
    original = Worker._add_file

    def slow(self, *args, **kwargs):
        time.sleep(3)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Worker, "_add_file", slow)
    workers = [Worker(db, CONFIG, lease=1, poll=0.1, name=f"w{i}") for i in range(2)]
    queue = PostgresJobs(db)
    job = queue.upload([note(0)])
    threads = [start(w) for w in workers]
    try:
        done, = finished(queue, [job.id], limit=120)
    finally:
        for w in workers:
            w.stopping.set()
        for t in threads:
            t.join(60)
    assert done.state == "done" and done.files[0].status == "added"
    with queue._pool.connection() as conn:
        assert conn.execute("SELECT attempts FROM jobs").fetchall() == [(1,)], "taken by the other worker"
    queue.close()


def test_a_worker_killed_mid_job_loses_only_that_job_which_another_finishes(db, tmp_path):
    open_store(Config(store=db)).close()  # the schema
    queue = PostgresJobs(db)
    job = queue.upload([note(i) for i in range(4)])
    # A real kill -9 of a worker after it has committed the first file of the job.
    script = textwrap.dedent(f"""
        import os, signal
        from assistant import Config
        from assistant.ingest.worker import Worker
        original = Worker._add_file
        def add_then_die(self, *args, **kwargs):
            original(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        Worker._add_file = add_then_die
        Worker({db!r}, Config(), lease=2, name="doomed").run()
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
    held = queue.get(job.id)
    assert held.state == "running" and held.done == 0
    assert set(consistent(db)) == {f"upload://{job.id}/note0.md"}

    survivor = Worker(db, CONFIG, lease=2, poll=0.1, name="survivor")
    thread = start(survivor)
    try:
        done, = finished(queue, [job.id], limit=120)
    finally:
        survivor.stopping.set()
        thread.join(60)
    assert done.state == "done" and [f.status for f in done.files] == ["added"] * 4, done
    with queue._pool.connection() as conn:
        assert conn.execute("SELECT worker, attempts FROM jobs").fetchall() == [("survivor", 2)]
    files = consistent(db)
    assert set(files) == {f"upload://{job.id}/note{i}.md" for i in range(4)}

    # An indexing run over a library folder keeps what the workers added.
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "extra.md").write_text("# Extra\n\nAn article from the library folder.", encoding="utf-8")
    report = index_library([folder], None, Config(store=db))
    assert report.added and not report.removed
    assert set(consistent(db)) == set(files) | {str((folder / "extra.md").resolve())}
    queue.close()


NEW_ARTICLE = """---
title: 墨西哥站清关新规
date: 2024-06-01
---

墨西哥海关自七月起要求每个包裹都附上收件人的税号RFC，缺少税号的包裹会被退回发件地。
"""


def test_a_server_without_ingest_answers_from_what_a_worker_indexed(db):
    worker = Worker(db, CONFIG, poll=0.1, name="w")  # before the server: it brings the schema
    bot = Assistant.open(store=db, config=CONFIG)
    queue = PostgresJobs(db)
    thread = None
    try:
        with running(create_app(bot, CONFIG, queue)) as url, httpx.Client(base_url=url, timeout=120) as client:
            upload = [("files", ("mx.md", NEW_ARTICLE.encode(), "text/markdown"))]
            posted = client.post("/api/documents", files=upload)
            assert posted.status_code == 202, posted.text
            assert client.get(posted.json()["url"]).json()["state"] == "queued"  # the server did not start it
            thread = start(worker)
            deadline = time.monotonic() + 600
            while (state := client.get(posted.json()["url"]).json())["state"] not in ("done", "failed"):
                assert time.monotonic() < deadline, state
                time.sleep(0.2)
            assert state["state"] == "done" and (state["stage"], state["done"], state["total"]) == ("reading", 1, 1)
            outcome, = state["files"]
            assert outcome["status"] == "added" and outcome["stored_as"] == f"upload://{posted.json()['job']}/mx.md"
            answer = client.post("/api/ask", json={"question": "墨西哥海关要求包裹附上什么？"}).json()
            assert not answer["declined"] and "RFC" in answer["answer"]
            assert {c["doc_id"] for c in answer["citations"]} == set(outcome["doc_ids"])
    finally:
        worker.stopping.set()
        if thread:
            thread.join(60)
        bot.close()
