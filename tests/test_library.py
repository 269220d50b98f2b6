"""The library from the browser's side: upload, jobs, list, remove, tokens; over real HTTP on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ENGLISH_ARTICLE, GBK_TEXT, make_pdf
from test_serve import running

from assistant import Assistant, Config, index_library
from assistant.ingest.library import Jobs, LibraryBusy, LibraryError, sanitize_name
from assistant.web import create_app
from assistant.web.security import write_refusal

# An article only the upload answers.
NEW_ARTICLE = """---
title: 墨西哥站清关新规
date: 2024-06-01
source: https://example.com/mx-customs
---

墨西哥海关自七月起要求每个包裹都附上收件人的税号RFC，缺少税号的包裹会被退回发件地。
"""
NEW_QUESTION = "墨西哥海关要求包裹附上什么？"
CONFIG = Config(max_file_mb=0.05, max_upload_files=6, max_upload_mb=0.2)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A library of one English article, indexed; yields (library folder, index folder, assistant)."""
    folder = tmp_path_factory.mktemp("lib")
    (folder / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    index = tmp_path_factory.mktemp("libindex")
    index_library([folder], index, CONFIG)
    bot = Assistant.open(index, CONFIG)
    yield folder, index, bot
    bot.close()


@pytest.fixture(scope="module")
def client(library):
    _, _, bot = library
    with running(create_app(bot, CONFIG)) as url, httpx.Client(base_url=url, timeout=120) as c:
        yield c


def wait(client: httpx.Client, job: dict, limit: float = 300) -> dict:
    deadline = time.monotonic() + limit
    while True:
        state = client.get(job["url"]).json()
        if state["state"] in ("done", "failed"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def test_upload_ask_list_and_remove(client, library, tmp_path):
    folder, index, bot = library
    pdf = make_pdf(tmp_path / "report.pdf", ["Returns report. Apparel sellers saw return rates of 18 percent.",
                                             "Electronics returns were lower, at 6 percent."]).read_bytes()
    files = [("files", ("../../墨西哥 清关?.md", NEW_ARTICLE.encode(), "text/markdown")),
             ("files", ("peak.txt", GBK_TEXT.encode("gbk"), "text/plain")),
             ("files", ("report.pdf", pdf, "application/pdf")),
             ("files", ("broken.pdf", b"%PDF-1.4\nthis is not a pdf", "application/pdf")),
             ("files", ("huge.txt", ("大" * 20_000).encode(), "text/plain"))]
    started = time.monotonic()
    r = client.post("/api/documents", files=files)
    assert r.status_code == 202, r.text
    job = wait(client, r.json())
    assert job["state"] == "done", job
    outcome = {f["name"]: f for f in job["files"]}
    assert outcome["../../墨西哥 清关?.md"]["status"] == "added"
    assert outcome["../../墨西哥 清关?.md"]["stored_as"] == "uploads/墨西哥 清关_.md"  # no folders, no odd characters
    assert outcome["peak.txt"]["status"] == "added" and outcome["report.pdf"]["status"] == "added"
    assert outcome["broken.pdf"]["status"] == "rejected" and "corrupt or unsupported PDF" in outcome["broken.pdf"]["reason"]
    assert outcome["huge.txt"]["status"] == "rejected" and "larger than max_file_mb" in outcome["huge.txt"]["reason"]
    assert sorted(tree(folder / "uploads")) == ["peak.txt", "report.pdf", "墨西哥 清关_.md"]  # rejected: not stored
    assert not (folder / ".uploading").exists()
    print(f"upload to answerable: {time.monotonic() - started:.1f} s")

    answer = client.post("/api/ask", json={"question": NEW_QUESTION}).json()  # no restart
    assert not answer["declined"] and answer["citations"][0]["title"] == "墨西哥站清关新规"
    doc_id = answer["citations"][0]["doc_id"]
    for mode in ("hybrid", "dense", "keyword"):
        hits = client.get("/api/search", params={"q": "墨西哥海关 税号RFC", "mode": mode, "k": 3}).json()["hits"]
        assert hits[0]["doc_id"] == doc_id, mode

    again = wait(client, client.post("/api/documents", files=[files[0]]).json())  # the same content: stored once
    assert again["files"][0]["status"] == "unchanged" and "already in the library" in again["files"][0]["reason"]

    listed = client.get("/api/documents").json()
    assert listed["total"] == 4
    new = next(d for d in listed["documents"] if d["doc_id"] == doc_id)
    assert new["format"] == "md" and new["date"] == "2024-06-01" and new["chunks"] >= 1 and new["added"]
    assert next(d for d in listed["documents"] if d["format"] == "pdf")["pages"] == 2
    assert [d["doc_id"] for d in client.get("/api/documents", params={"q": "清关"}).json()["documents"]] == [doc_id]
    assert client.get("/api/documents", params={"limit": 1, "offset": 1}).json()["documents"][0]["doc_id"] != \
        listed["documents"][0]["doc_id"]

    removed = wait(client, client.delete(f"/api/documents/{doc_id}").json())
    assert removed["state"] == "done" and removed["removed"] == ["uploads/墨西哥 清关_.md"]
    assert client.get(f"/api/documents/{doc_id}").status_code == 404
    for mode in ("hybrid", "dense", "keyword"):
        hits = client.get("/api/search", params={"q": "墨西哥海关 税号RFC", "mode": mode, "k": 5}).json()["hits"]
        assert doc_id not in {h["doc_id"] for h in hits}, mode
    after = client.post("/api/ask", json={"question": NEW_QUESTION}).json()
    assert doc_id not in {c["doc_id"] for c in after["citations"]}
    assert client.delete(f"/api/documents/{doc_id}").status_code == 404

    # `assistant index` of the library agrees with the browser: uploads stay, the removal sticks.
    report = index_library([folder], index, CONFIG)
    assert (report.added, report.removed, len(report.unchanged)) == ([], [], 3)
    assert bot.document(doc_id) is None and client.get("/api/documents").json()["total"] == 3


def test_rejected_uploads_leave_the_library_as_it_was(client, library):
    folder, _, _ = library
    before = tree(folder)
    too_big = client.post("/api/documents", files=[("files", ("a.txt", b"x" * 300_000, "text/plain"))])
    assert too_big.status_code == 413 and "max_upload_mb" in too_big.json()["detail"]
    too_many = client.post("/api/documents", files=[("files", (f"{n}.txt", b"hello", "text/plain")) for n in range(7)])
    assert too_many.status_code == 413 and "max_upload_files" in too_many.json()["detail"]
    # Each refusal names its own cause (they all read "send at most 20 files" once).
    not_multipart = client.post("/api/documents", data={"x": "1"})
    assert not_multipart.status_code == 415 and "multipart/form-data" in not_multipart.json()["detail"]
    assert "at most" not in not_multipart.json()["detail"]
    no_files = client.post("/api/documents", files=[("other", ("a.txt", b"hello", "text/plain"))])
    assert no_files.status_code == 422 and "No files" in no_files.json()["detail"]
    job = wait(client, client.post("/api/documents", files=[("files", ("empty.md", b"  \n", "text/markdown")),
                                                            ("files", ("tool.exe", b"MZ", "application/x"))]).json())
    assert [f["status"] for f in job["files"]] == ["rejected", "rejected"]
    assert "empty file" in job["files"][0]["reason"] and "unsupported file type" in job["files"][1]["reason"]
    cross = client.post("/api/documents", files=[("files", ("x.md", b"# x\n\nhello", "text/markdown"))],
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert tree(folder) == before


def test_writes_need_the_token(library):
    _, _, bot = library
    for config, good in ((Config(api_token="api-secret"), "api-secret"),
                         (Config(api_token="api-secret", admin_token="admin-secret"), "admin-secret")):
        with running(create_app(bot, config)) as url:
            upload = [("files", ("x.md", b"# x\n\nhello", "text/markdown"))]
            assert httpx.post(url + "/api/documents", files=upload).status_code == 401
            assert httpx.post(url + "/api/documents", files=upload,
                              headers={"Authorization": "Bearer api-secret-wrong"}).status_code == 401
            assert httpx.delete(url + "/api/documents/0000000000000000").status_code == 401
            ok = httpx.delete(url + "/api/documents/0000000000000000", headers={"Authorization": f"Bearer {good}"})
            assert ok.status_code == 404  # past the token check
            if config.admin_token:  # the api_token reads but does not write; the admin_token does both
                assert httpx.delete(url + "/api/documents/0000000000000000",
                                    headers={"Authorization": "Bearer api-secret"}).status_code == 401
                for token, status in (("admin-secret", 200), ("api-secret", 200), ("wrong", 401)):
                    assert httpx.get(url + "/api/documents", headers={"Authorization": f"bearer {token}"}
                                     ).status_code == status
    # Without any token, only this machine writes.
    assert write_refusal({}, "10.0.0.7", "http://h", Config(), ("http://localhost:*",))[0] == 403
    assert write_refusal({}, "127.0.0.1", "http://h", Config(), ("http://localhost:*",)) is None


def test_sanitize_name():
    assert sanitize_name("../../etc/passwd") == "passwd"
    assert sanitize_name("C:\\Users\\x\\报告 2024.PDF") == "报告 2024.pdf"
    assert sanitize_name(".hidden.md") == "hidden.md" and sanitize_name("a<b>|c.md") == "a_b_c.md"
    assert len(sanitize_name("x" * 500 + ".md")) <= 120


def test_cli_documents_and_remove(tmp_path):
    library = tmp_path / "corpus"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    assert run("index").returncode == 0
    listed = json.loads(run("documents", "--json").stdout)
    assert listed["total"] == 1 and listed["documents"][0]["title"] == "Shipping lithium batteries to Europe"
    doc_id = listed["documents"][0]["doc_id"]
    assert doc_id in run("documents").stdout
    gone = run("remove", doc_id)
    assert gone.returncode == 0 and "batteries.md" in gone.stdout
    assert not (library / "batteries.md").exists() and list((library / ".removed").rglob("batteries.md"))
    assert "0 of 0 documents" in run("documents").stdout
    unknown = run("remove", "nope")
    assert unknown.returncode != 0 and "no document with id 'nope'" in unknown.stderr


def test_no_upload_or_removal_loses_a_file(tmp_path):
    """Two files of one upload stored under one name, a new version of a file, a document held by a
    file outside the library folder: every earlier file stays recoverable, and nothing is said to be done
    that was not."""
    folder, outside = tmp_path / "lib", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    (folder / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    (outside / "loose.md").write_text("# Loose\n\nA note about customs brokers in Chile.", encoding="utf-8")
    bot = Assistant.build([folder, outside / "loose.md"], tmp_path / "ix", CONFIG)
    first, second = bot.add_files([("报告?.md", "# 一\n\n第一份报告：巴西站的退货率。".encode()),
                                   ("报告*.md", "# 二\n\n第二份报告：智利站的物流。".encode())])
    assert first.status == "added" and first.stored_as == "uploads/报告_.md"
    assert second.status == "rejected" and "rename one" in second.reason
    (newer,) = bot.add_files([("报告?.md", "# 一\n\n第一份报告的新版：巴西站的退货率下降。".encode())])
    assert newer.status == "updated"
    assert [p.read_text(encoding="utf-8") for p in (folder / ".removed").rglob("报告_.md")] == [
        "# 一\n\n第一份报告：巴西站的退货率。"]
    loose = next(d.doc_id for d in bot.documents()[1] if d.title == "Loose")
    with pytest.raises(LibraryError, match="not inside a library folder"):
        bot.remove_document(loose)
    assert (outside / "loose.md").exists() and "Loose" in {d.title for d in bot.documents()[1]}
    bot.close()


def test_library_changes_waiting_in_memory_are_bounded():
    """Each queued upload holds its files in memory until the one worker reaches it."""
    release = threading.Event()

    class SlowLibrary:
        answering = staticmethod(lambda: False)

        def add(self, files, progress, outcomes, collection=None):
            release.wait(60)

    jobs = Jobs(SlowLibrary(), keep=1, waiting=2)
    first, second = jobs.upload([("a.md", b"a")]), jobs.upload([("b.md", b"b")])
    with pytest.raises(LibraryBusy, match="2 library changes are already waiting"):
        jobs.upload([("c.md", b"c")])
    release.set()
    deadline = time.monotonic() + 60
    while second.finished is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.state == second.state == "done"
    third = jobs.upload([("c.md", b"c")])
    assert jobs.get(third.id) and jobs.get(second.id) and jobs.get(first.id) is None  # keep=1 finished job
    jobs.close()
