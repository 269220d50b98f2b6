"""The question log (issue #21): every surface records its questions, feedback is kept and shown, conversations
last, Insights group what the library could not answer, retention, question_log = false, and PostgreSQL."""

from __future__ import annotations

import csv
import io
import logging
import shutil
import sqlite3
import threading
import time
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner
from test_serve import CAKE, FOLLOW_UP, SEA, running

from assistant import Assistant, Config
from assistant.cli import main
from assistant.log import questions as questions_module
from assistant.log.questions import Entry, QuestionLog, SqliteQuestions, Turn, Vote, new_id, utcnow
from assistant.web import create_app

# One topic the fixture library lacks, worded differently: cosine 0.88 in e5, so that the grouping threshold
# (0.84) joins them, while CAKE (0.76 and 0.74 to them) stays apart. All three are declined.
JAPAN = ["What certification do I need to sell electronics in Japan?", "Which PSE mark rules apply to chargers sold in Japan?"]
LOGGED = Config(question_log=True)


@pytest.fixture
def folder(built, tmp_path):
    """A copy of the fixture index, so that the log's writes stay out of the shared one; without the questions
    already in it (`assistant serve` logs by default, and test_serve runs it on the shared index)."""
    folder = shutil.copytree(built[1], tmp_path / "index")
    store = SqliteQuestions(folder / "library.sqlite")
    store.delete_all()
    store.close()
    return folder


@pytest.fixture
def bot(folder):
    assistant = Assistant.open(folder, LOGGED)
    yield assistant
    assistant.close()


def logged(bot: Assistant) -> list[Entry]:
    assert bot.questions.flush(30)
    return bot.questions.store.entries(utcnow() - timedelta(days=1))


def rows(folder, table: str) -> int:
    with sqlite3.connect(folder / "library.sqlite") as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_every_surface_records_its_questions_with_the_outcome(bot):
    from gradio_client import Client

    with running(create_app(bot, LOGGED)) as url, httpx.Client(base_url=url, timeout=120) as api:
        rest = api.post("/api/ask", json={"question": SEA}).json()
        declined = api.post("/api/ask", json={"question": CAKE}).json()
        assert rest["id"] and declined["id"] and rest["conversation_id"] != declined["conversation_id"]
        page_ids = {"conversation": new_id(), "client": new_id()}
        Client(url + "/", verbose=False).predict(SEA, page_ids, api_name="/chat")
        Client(url + "/", verbose=False, headers={"Referer": url + "/?embed=widget"}).predict(
            CAKE, {"conversation": new_id(), "client": new_id()}, api_name="/chat")
        Client(url + "/", verbose=False).predict(CAKE, [], api_name="/ask")
    python = bot.ask(SEA)

    entries = {e.id: e for e in logged(bot)}
    assert [e.surface for e in sorted(entries.values(), key=lambda e: e.asked_at)] == [
        "rest", "rest", "chat", "widget", "gradio_api", "python"]
    answered = entries[rest["id"]]
    assert (answered.question, answered.declined, answered.lang, answered.reason) == (SEA, False, "en", "")
    assert answered.citations == [{"doc_id": c["doc_id"], "start": c["start"], "end": c["end"]} for c in rest["citations"]]
    assert 0 < answered.seconds < 60 and answered.vector is None  # vectors are read only for grouping
    assert entries[declined["id"]].declined and entries[declined["id"]].reason == declined["meta"]["reason"]
    assert entries[python.meta["id"]].surface == "python" and not entries[python.meta["id"]].declined
    widget = next(e for e in entries.values() if e.surface == "widget")
    assert widget.declined and widget.conversation_id and bot.conversation(widget.conversation_id)[0].question == CAKE
    assert all(e.client is None for e in entries.values())  # question_log_clients is off


def test_client_address_and_agent_are_kept_only_when_asked(folder):
    for keep in (False, True):
        bot = Assistant.open(folder, LOGGED.replace(question_log_clients=keep))
        try:
            with running(create_app(bot, bot.config)) as url:
                answer = httpx.post(url + "/api/ask", json={"question": SEA}, headers={"User-Agent": "probe/1"},
                                    timeout=120).json()
            entry = next(e for e in logged(bot) if e.id == answer["id"])
            assert entry.client == ({"ip": "127.0.0.1", "user_agent": "probe/1"} if keep else None)
        finally:
            bot.close()


def test_feedback_with_a_reason_is_stored_shown_and_changeable(bot):
    with running(create_app(bot, LOGGED)) as url, httpx.Client(base_url=url, timeout=120) as api:
        answer = api.post("/api/ask", json={"question": SEA}).json()
        vote = {"id": answer["id"], "vote": "down", "reason": "out_of_context", "comment": "The quote is about air",
                "client_id": "browser-one"}
        assert api.post("/api/feedback", json=vote).status_code == 200
        assert api.post("/api/feedback", json={**vote, "client_id": "browser-two", "reason": None,
                                               "comment": ""}).status_code == 200
        report = api.get("/api/insights").json()
        assert report["totals"]["down"] == 2
        group = next(g for g in report["groups"] if g["questions"][0]["question"] == SEA)
        assert group["down"] == 1 and group["declined"] == 0
        assert {"vote": -1, "reason": "out_of_context", "comment": "The quote is about air"} in group["questions"][0]["feedback"]
        assert group["closest"][0]["title"] == "Shipping lithium batteries to Europe"
        feedback = list(csv.DictReader(io.StringIO(api.get("/api/insights/feedback.csv").text.lstrip("\ufeff"))))
        assert {(f["vote"], f["reason"], f["comment"], f["question"]) for f in feedback} == {
            ("down", "out_of_context", "The quote is about air", SEA), ("down", "", "", SEA)}

        # One vote per answer and browser: voting again changes it, "none" takes it back.
        assert api.post("/api/feedback", json={**vote, "vote": "up", "reason": None}).status_code == 200
        assert api.post("/api/feedback", json={**vote, "client_id": "browser-two", "vote": "none"}).status_code == 200
        report = api.get("/api/insights").json()
        assert (report["totals"]["up"], report["totals"]["down"]) == (1, 0)
        assert not any(q["question"] == SEA for g in report["groups"] for q in g["questions"])

        assert api.post("/api/feedback", json={**vote, "id": new_id()}).status_code == 404
        assert api.post("/api/feedback", json={**vote, "comment": "x" * 1001}).status_code == 422
        assert api.post("/api/feedback", json={**vote, "reason": "rude"}).status_code == 422
    assert rows(bot.index.folder, "feedback") == 1


def test_a_conversation_is_continued_by_its_id(bot):
    with running(create_app(bot, LOGGED)) as url, httpx.Client(base_url=url, timeout=120) as api:
        first = api.post("/api/ask", json={"question": SEA}).json()
        assert api.post("/api/ask", json={"question": FOLLOW_UP}).json()["declined"]  # alone, it is declined
        follow = api.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": first["conversation_id"]}).json()
        assert not follow["declined"] and follow["conversation_id"] == first["conversation_id"]
        assert follow["citations"][0]["title"] == "Shipping lithium batteries to Europe"
        turns = bot.conversation(first["conversation_id"])
        assert [t.question for t in turns] == [SEA, FOLLOW_UP]
        assert turns[1].answer["meta"]["id"] == follow["id"] and turns[0].answer["answer"] == first["answer"]

        assert api.post("/api/ask", json={"question": SEA, "conversation_id": new_id()}).status_code == 404
        both = {"question": SEA, "conversation_id": first["conversation_id"], "history": [{"role": "user", "content": SEA}]}
        assert api.post("/api/ask", json=both).status_code == 422
        with api.stream("POST", "/api/ask", json={"question": SEA, "stream": True,
                                                   "conversation_id": first["conversation_id"]}) as r:
            assert f'"conversation_id": "{first["conversation_id"]}"' in r.read().decode()
    assert len(bot.conversation(first["conversation_id"])) == 3


def test_a_conversation_keeps_its_last_turns(folder, monkeypatch):
    monkeypatch.setattr(questions_module, "CONVERSATION_TURNS", 3)
    store = SqliteQuestions(folder / "library.sqlite")
    conversation = new_id()
    now = utcnow()
    store.write([], [Turn(conversation, i, now, f"q{i}", {"answer": f"a{i}"}) for i in range(5)])
    assert [t.question for t in store.turns(conversation, now - timedelta(days=1))] == ["q2", "q3", "q4"]
    store.close()


def test_declined_questions_on_one_missing_topic_form_one_group(bot):
    for question in (*JAPAN, CAKE):
        assert bot.ask(question).declined
    answered = bot.ask(SEA)  # answered and not marked: in no group
    groups = bot.insights(days=7)["groups"]
    found = [sorted(q["question"] for q in g["questions"]) for g in groups]
    assert sorted(found) == sorted([sorted(JAPAN), [CAKE]])
    japan = next(g for g in groups if g["count"] == 2)
    assert japan["declined"] == 2 and japan["languages"] == {"en": 2} and japan["first"] <= japan["last"]
    assert len(japan["closest"]) == 3 and all(d["title"] for d in japan["closest"])
    assert groups[0] is japan  # the largest first
    assert bot.insights(days=7, sort="newest")["groups"][0]["questions"][0]["question"] == CAKE

    again = bot.insights(days=7)
    assert again["totals"]["declined"] == 3 and again["totals"]["answered"] == 1
    assert again["daily"][-1]["questions"] == 4 and again["daily"][-1]["declined_share"] == 0.75
    cited = {c.doc_id for c in answered.citations}
    assert {d["doc_id"] for d in again["most_cited"]} == cited and {d["answers"] for d in again["most_cited"]} == {1}
    assert "Shipping lithium batteries to Europe" in {d["title"] for d in again["most_cited"]}
    never = again["never_cited"]
    assert never["total"] == len(bot.index.store.doc_ids() - cited) == len(never["documents"])
    assert not cited & {d["doc_id"] for d in never["documents"]}


def test_retention_deletes_old_entries_when_the_log_opens(folder):
    store = SqliteQuestions(folder / "library.sqlite")
    now = utcnow()
    old, recent = new_id(), new_id()
    store.write([Entry(old, now - timedelta(days=91), "rest", "old question", "en", True, "x", [], 0.1),
                 Entry(recent, now - timedelta(days=89), "rest", "recent question", "en", True, "x", [], 0.1)],
                [Turn("c" * 22, 1, now - timedelta(days=31), "old turn", {"answer": ""}),
                 Turn("d" * 22, 1, now - timedelta(days=29), "recent turn", {"answer": ""})])
    assert store.vote(Vote(old, "browser", -1)) and store.vote(Vote(recent, "browser", -1))
    store.close()

    log = QuestionLog(SqliteQuestions(folder / "library.sqlite"), days=90)
    try:
        deadline = time.monotonic() + 10
        while rows(folder, "questions") > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.id for e in log.store.entries(now - timedelta(days=365))] == [recent]
        assert [v.answer_id for v in log.store.feedback(now - timedelta(days=365))] == [recent]
        assert not log.conversation("c" * 22) and log.conversation("d" * 22)[0].question == "recent turn"
    finally:
        log.close()


def test_question_log_false_records_nothing(folder):
    before = {t: rows(folder, t) for t in ("questions", "feedback", "conversation_turns")}
    bot = Assistant.open(folder, Config(question_log=False))
    try:
        assert bot.questions is None and "id" not in bot.ask(SEA).meta
        with running(create_app(bot, bot.config)) as url, httpx.Client(base_url=url, timeout=120) as api:
            answer = api.post("/api/ask", json={"question": CAKE}).json()
            assert answer["id"] is None and answer["conversation_id"] is None
            assert api.post("/api/ask", json={"question": SEA, "conversation_id": new_id()}).status_code == 409
            assert api.post("/api/feedback", json={"id": new_id(), "vote": "down"}).status_code == 409
            assert api.get("/api/insights").status_code == 409
        with pytest.raises(LookupError):
            bot.insights()
    finally:
        bot.close()
    assert {t: rows(folder, t) for t in before} == before
    result = CliRunner().invoke(main, ["insights", "--index", str(folder)], env={"ASSISTANT_QUESTION_LOG": "false"})
    assert result.exit_code != 0 and "question_log = false" in result.output


def test_serve_keeps_a_log_unless_told_not_to(folder, monkeypatch):
    import socket

    import assistant.web

    seen = []
    monkeypatch.setattr(assistant.web, "run_server", lambda bot, config, **how: (seen.append(bot.questions), bot.close()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    for env, on in (({}, True), ({"ASSISTANT_QUESTION_LOG": "false"}, False)):
        result = CliRunner().invoke(main, ["serve", "--index", str(folder), "--port", port], env=env)
        assert result.exit_code == 0, result.output
        assert (seen[-1] is not None) == on
    assert Assistant.open(folder, Config()).questions is None  # the Python API: only when asked


def test_insights_need_what_changing_the_library_needs(bot):
    config = LOGGED.replace(admin_token="admin-secret", api_token="api-secret")
    bot.ask("=HYPERLINK(\"http://evil.example\")")
    with running(create_app(bot, config)) as url, httpx.Client(base_url=url, timeout=120) as api:
        assert api.get("/api/insights").status_code == 401
        assert api.get("/api/insights", headers={"Authorization": "Bearer api-secret"}).status_code == 401
        admin = {"Authorization": "Bearer admin-secret"}
        assert api.get("/api/insights", headers=admin).json()["totals"]["questions"] == 1
        exported = api.get("/api/insights/questions.csv", headers=admin)
        assert exported.headers["content-type"].startswith("text/csv") and "attachment" in exported.headers["content-disposition"]
        row = next(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
        assert row["question"] == "'=HYPERLINK(\"http://evil.example\")" and row["outcome"] == "declined"
        page = api.get("/insights")
        assert page.status_code == 200 and "/insights.js" in page.text and "<script>" not in page.text
        assert api.get("/insights.js").headers["content-type"].startswith("text/javascript")
        # Feedback takes the api_token, like asking.
        answer = api.post("/api/ask", json={"question": SEA}, headers={"Authorization": "Bearer api-secret"}).json()
        assert api.post("/api/feedback", json={"id": answer["id"], "vote": "up"}).status_code == 401
        assert api.post("/api/feedback", json={"id": answer["id"], "vote": "up"},
                        headers={"Authorization": "Bearer api-secret"}).status_code == 200


class SlowStore(SqliteQuestions):
    """A store that is busy: every write waits until `release` is set (at most `seconds`), then fails;
    `released_late` counts writes that gave up waiting, which only happens if an answer waited for them."""

    def __init__(self, path, seconds: float):
        super().__init__(path)
        self.seconds, self.tries, self.released_late = seconds, 0, 0
        self.release = threading.Event()

    def write(self, entries, turns):
        self.tries += 1
        self.released_late += not self.release.wait(self.seconds)
        raise sqlite3.OperationalError("database is locked")


def test_a_busy_store_never_slows_or_fails_an_answer(folder, monkeypatch, caplog):
    monkeypatch.setattr(questions_module, "RETRY_PAUSES", (0.1,))
    monkeypatch.setattr(questions_module, "QUEUE_SIZE", 2)
    bot = Assistant.open(folder, Config())
    store = SlowStore(folder / "library.sqlite", seconds=120)
    bot.questions = QuestionLog(store, 90)
    try:
        with caplog.at_level(logging.WARNING, logger="assistant.log.questions"):
            # The store holds every write until the four answers are back: an answer that waited for the
            # log would hold them past the store's 120 s, and `released_late` would count it.
            answers = [bot.ask(q) for q in (SEA, CAKE, SEA, CAKE)]
            store.release.set()
            assert store.released_late == 0, "an answer waited for the log"
            assert all(a.meta["id"] for a in answers) and not answers[0].declined
        bot.questions.flush(30)
        counts = bot.questions.counts()
        assert counts["written"] == 0 and counts["failed"] + counts["dropped"] == 4 and counts["dropped"] >= 1
        assert store.tries >= 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "answers go on" in warnings[0].getMessage()
    finally:
        bot.close()


def test_the_chat_restores_a_conversation_with_the_browsers_votes(bot):
    from assistant.web.chat import answer_id_of, browser_ids

    ids = browser_ids(None)
    answer = bot.ask(SEA, [], surface="chat", conversation=ids["conversation"])
    assert bot.feedback(answer.meta["id"], -1, "wrong_answer", "", client_id=ids["client"])
    assert browser_ids(ids) == ids and browser_ids({"conversation": "<script>", "client": ids["client"]})["conversation"] != "<script>"
    assert browser_ids(ids, fresh_conversation=True)["client"] == ids["client"]
    assert bot.questions.votes([answer.meta["id"]], ids["client"]) == {answer.meta["id"]: -1}
    from assistant.web.render import answer_from_dict, render_answer

    html = render_answer(answer_from_dict(bot.conversation(ids["conversation"])[0].answer), bot)
    assert answer_id_of([{"type": "text", "text": html}]) == answer.meta["id"]
    assert html == render_answer(answer, bot)


# --- PostgreSQL: the log is in the shared database ------------------------------------------------
@pytest.fixture(scope="module")
def pg():
    from pg import LocalPostgres

    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.mark.postgres
def test_two_servers_on_one_postgres_database_keep_one_log(built, pg):
    from assistant.store.factory import copy_library, open_store

    db = pg.createdb("questions")
    source, target = open_store(Config(), built[1], serving=True), open_store(Config(store=db))
    copy_library(source, target)
    source.close()
    target.close()
    config = LOGGED.replace(store=db)
    one, two = Assistant.open(config=config), Assistant.open(config=config)
    try:
        with running(create_app(one, config)) as url1, running(create_app(two, config)) as url2:
            first = httpx.post(url1 + "/api/ask", json={"question": SEA}, timeout=120).json()
            # The other server continues the conversation and takes the vote on the first one's answer.
            follow = httpx.post(url2 + "/api/ask", json={"question": FOLLOW_UP,
                                                          "conversation_id": first["conversation_id"]}, timeout=120).json()
            assert not follow["declined"]
            vote = {"id": first["id"], "vote": "down", "reason": "wrong_answer", "comment": "two servers"}
            assert httpx.post(url2 + "/api/feedback", json=vote, timeout=60).status_code == 200
            for question in JAPAN:
                assert httpx.post(url2 + "/api/ask", json={"question": question}, timeout=120).json()["declined"]
            two.questions.flush(30)
            reports = [httpx.get(u + "/api/insights", timeout=120).json() for u in (url1, url2)]
        assert reports[0]["totals"] == reports[1]["totals"]
        assert reports[0]["totals"]["questions"] == 4 and reports[0]["totals"]["down"] == 1
        groups = [sorted(q["question"] for q in g["questions"]) for g in reports[0]["groups"]]
        assert sorted(JAPAN) in groups and [SEA] in groups
        assert {e.surface for e in one.questions.store.entries(utcnow() - timedelta(days=1))} == {"rest"}
    finally:
        one.close()
        two.close()


@pytest.mark.postgres
def test_postgres_retention_and_concurrent_writers(built, pg):
    from assistant.log.questions import PostgresQuestions
    from assistant.store.factory import open_store

    db = pg.createdb("retention")
    open_store(Config(store=db)).close()  # the schema
    stores = [PostgresQuestions(db) for _ in range(2)]
    now = utcnow()
    old = Entry(new_id(), now - timedelta(days=40), "rest", "old", "en", True, "x", [], 0.1)
    threads = [threading.Thread(target=s.write, args=([Entry(new_id(), now, "rest", f"q{i}", "en", False, "", [], 0.1)
                                                       for i in range(20)], [])) for s in stores]
    stores[0].write([old], [])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].vote(Vote(old.id, "b", -1))
    assert stores[1].purge(now - timedelta(days=30), now - timedelta(days=30)) == 1
    assert len(stores[0].entries(now - timedelta(days=365))) == 40 and not stores[0].feedback(now - timedelta(days=365))
    for s in stores:
        s.close()
