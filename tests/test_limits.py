"""Hostile and careless requests against a real server on loopback: every path keeps its bounds (issue #9)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from test_serve import FOLLOW_UP, SEA, running

from assistant import Config
from assistant.answer.respond import _with_context
from assistant.web import create_app

TOKEN = "s3cret-token-for-limits"


@pytest.fixture(scope="module")
def guarded(built) -> Iterator[httpx.Client]:
    """A server with an api_token, as the issue's attacker met it."""
    bot, _, _ = built
    with running(create_app(bot, Config(api_token=TOKEN))) as url, httpx.Client(base_url=url, timeout=120) as c:
        yield c


@pytest.fixture
def searched(built, monkeypatch) -> list[str]:
    """The texts the assistant searches for (what reaches the embedder and BM25), as they are prepared."""
    bot, _, _ = built
    seen: list[str] = []
    prepare = bot.retriever.prepare

    def spy(text):
        seen.append(text)
        return prepare(text)

    monkeypatch.setattr(bot.retriever, "prepare", spy)
    return seen


def gradio_call(client: httpx.Client, api: str, data: list, **headers) -> tuple[str, object]:
    """Gradio's own API: POST /gradio_api/call/NAME, then read its event stream: (event, data)."""
    body = json.dumps({"data": data})  # ASCII: a lone surrogate travels as JSON allows, "\\ud800"
    r = client.post(f"/gradio_api/call/{api}", content=body, headers={"content-type": "application/json", **headers})
    r.raise_for_status()
    with client.stream("GET", f"/gradio_api/call/{api}/{r.json()['event_id']}", headers=headers) as events:
        event = None
        for line in events.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event, json.loads(line[5:])
    raise AssertionError("the event stream ended without a result")


AUTH = {"Authorization": f"Bearer {TOKEN}"}
USER = {"role": "user", "content": "How long does sea freight take from Shenzhen to Hamburg?"}


def test_a_follow_up_searches_a_bounded_tail_of_the_previous_message(guarded, searched):
    # Issue #9.1: a 990 KB previous message was searched in full (20 s, 4.3 GB; 11 MB: OOM).
    pasted = "Sea freight to Hamburg. " * 3_750 + USER["content"]  # 90k characters, within max_history_chars
    r = guarded.post("/api/ask", headers=AUTH, json={"question": FOLLOW_UP,
                                                     "history": [{"role": "user", "content": pasted}]})
    assert r.status_code == 200 and not r.json()["declined"]
    limit = Config().max_question_chars
    assert searched and max(len(t) for t in searched) <= limit + 1 + len(FOLLOW_UP)
    searched_for = _with_context(FOLLOW_UP, [{"role": "user", "content": pasted}], limit)
    # The question first: the model reads a bounded number of tokens from the beginning (issue #23).
    assert searched_for.startswith(FOLLOW_UP + "\n") and searched_for.endswith(USER["content"])

    huge = guarded.post("/api/ask", headers=AUTH, json={"question": FOLLOW_UP,
                                                        "history": [{"role": "user", "content": "x" * 990_000}]})
    assert huge.status_code == 413 and "max_history_chars" in huge.json()["detail"]
    # The 11 MB history sent to Gradio's API is refused before it is read.
    body = json.dumps({"data": [FOLLOW_UP, [{"role": "user", "content": "x" * 11_000_000}]]})
    r = guarded.post("/gradio_api/call/ask", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert all(len(t) <= limit + 1 + len(FOLLOW_UP) for t in searched)


def test_gradio_api_needs_the_token_and_keeps_every_limit(guarded, searched):
    # Issue #9.2: Gradio's API answered without the token and ignored the limits.
    event, data = gradio_call(guarded, "ask", [SEA, []])
    assert event == "error" and "token" in json.dumps(data) and not searched
    event, data = gradio_call(guarded, "ask", [SEA, []], **AUTH)
    assert event == "complete" and not data[0]["declined"]

    many = [USER, {"role": "assistant", "content": "ok"}] * 2_500  # 5,000 messages
    event, data = gradio_call(guarded, "ask", [FOLLOW_UP, many], **AUTH)
    assert event == "error" and "5000" in json.dumps(data) and "100" in json.dumps(data)
    event, data = gradio_call(guarded, "ask", ["x" * 2_001, []], **AUTH)
    assert event == "error" and "2000" in json.dumps(data)
    event, data = gradio_call(guarded, "chat", ["x" * 2_001, [], None])  # message, history, the browser's ids
    assert event == "complete" and "2000" in data[0] and "sa-error" in data[0]

    big = json.dumps({"data": ["x" * 4_100_000]})
    for path in ("/gradio_api/call/chat", "/gradio_api/call/ask", "/gradio_api/queue/join", "/gradio_api/run/ask"):
        r = guarded.post(path, content=big, headers={"content-type": "application/json", **AUTH})
        assert r.status_code == 413, path
    for path, size in (("/gradio_api/upload", 1000), ("/upload", 1000), ("/gradio_api/upload", 50_000_000)):
        r = guarded.post(path, files={"files": ("big.txt", b"x" * size)})
        assert r.status_code == 403 and "uploads are turned off" in r.json()["detail"], path

    from gradio_client import Client

    with pytest.raises(Exception, match="token"):
        Client(str(guarded.base_url), verbose=False).predict(SEA, [], api_name="/ask")
    answer = Client(str(guarded.base_url), verbose=False, headers=AUTH).predict(SEA, [], api_name="/ask")
    assert not answer["declined"]
    assert len(searched) == 2  # only the two authorised, bounded questions were searched


def test_the_chat_keeps_only_the_recent_messages_that_fit_the_limits():
    from assistant.web.limits import recent_history

    config = Config()
    history = [{"role": "user", "content": "y" * 5_000}, {"role": "assistant", "content": "z" * 5_000}] * 200
    history += [USER, {"role": "assistant", "content": "Five to six weeks. [1]"}]
    kept = recent_history(history, config)
    assert kept[-2:] == history[-2:] and len(kept) <= config.max_history_messages
    assert sum(len(m["content"]) for m in kept) <= config.max_history_chars


def test_lone_surrogates_are_a_clean_422(guarded, searched):
    # Issue #9.6: {"question": "\ud800 网红"} gave a 500.
    for body in ('{"question": "\\ud800 网红"}',
                 '{"question": "网红营销有哪些风险？", "history": [{"role": "user", "content": "\\udfff"}]}'):
        r = guarded.post("/api/ask", content=body.encode(), headers={"content-type": "application/json", **AUTH})
        # In the question's language (issue #31): both questions here are Chinese.
        assert r.status_code == 422 and "U+D" in r.json()["detail"] and "无效字符" in r.json()["detail"], body
    r = guarded.post("/api/ask", content=b'{"question": "\\ud800 x", "stream": true}',
                     headers={"content-type": "application/json", **AUTH})
    assert r.status_code == 422
    event, data = gradio_call(guarded, "ask", ["\ud800 网红", []], **AUTH)
    assert event == "error" and "U+D800" in json.dumps(data)
    event, data = gradio_call(guarded, "chat", ["\ud800 网红", [], None])
    assert event == "complete" and "U+D800" in data[0]
    event, data = gradio_call(guarded, "ask", [42, {"role": "user"}], **AUTH)  # Gradio passes any JSON value on
    assert event == "error" and "must be a string" in json.dumps(data)
    for text in ("\x00", "网红\u0000营销", "\ufeff", "\u202e", "\U0010ffff"):  # other strings JSON allows
        r = guarded.post("/api/ask", headers=AUTH, json={"question": text})
        assert r.status_code in (200, 422), (text, r.status_code)
        assert guarded.get("/api/search", headers=AUTH, params={"q": text}).status_code in (200, 422)
    assert not searched or all("\ud800" not in t for t in searched)


def test_only_the_allowed_host_names_are_answered(guarded, built):
    # Issue #9.7: Host: evil.example got 200, which is all a DNS-rebinding page needs.
    for path in ("/healthz", "/", "/gradio_api/info", "/api/search?q=x"):
        r = guarded.get(path, headers={"Host": "evil.example"})
        assert r.status_code == 400 and "allowed_hosts" in r.json()["detail"], path
    port = guarded.base_url.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert guarded.get("/healthz", headers={"Host": host}).status_code == 200, host

    bot, _, _ = built
    intranet = Config(allowed_hosts=("assistant.intranet",))
    with running(create_app(bot, intranet)) as url, httpx.Client(base_url=url) as c:
        assert c.get("/healthz", headers={"Host": "assistant.intranet:7860"}).status_code == 200
        assert c.get("/healthz").status_code == 400  # 127.0.0.1 is not in the list
    with running(create_app(bot, Config(host="0.0.0.0"))) as url, httpx.Client(base_url=url) as c:
        assert c.get("/healthz", headers={"Host": "assistant.intranet"}).status_code == 200
