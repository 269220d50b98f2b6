"""The MCP server as agents use it: the MCP SDK's own client over stdio (`assistant mcp`) and over streamable
HTTP (/mcp on the real server), every quote checked against the document text."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import timedelta

import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

import assistant.web.mcp as web_mcp
from assistant import Config
from assistant.web import create_app
from test_serve import CAKE, SEA, running

TOKEN = "mcp-test-token"
TOOLS = {"search_library", "ask_library", "get_document", "list_documents", "list_collections"}


async def call(session: ClientSession, tool: str, **arguments) -> dict:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def exercise(session: ClientSession, bot, root: str) -> None:
    """List the tools and call each; every passage and quote is the document's text at its offsets, as
    get_document returns it and as the stored document holds it."""
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description) > 40 and (tool.input_schema["properties"] or tool.name == "list_collections")
        assert tool.annotations.read_only_hint and not tool.annotations.destructive_hint
    assert tools["search_library"].input_schema["required"] == ["query"]
    assert tools["search_library"].input_schema["properties"]["k"]["maximum"] == 50

    async def verified(doc_id: str, start: int, end: int, text: str) -> None:
        window = await call(session, "get_document", doc_id=doc_id, start=start, end=end)
        assert window["text"] == text == bot.document(doc_id).text[start:end]
        assert (window["start"], window["end"], window["next_start"]) == (start, end, None)

    found = await call(session, "search_library", query=SEA, k=3)
    assert len(found["passages"]) == 3
    for p in found["passages"]:
        await verified(p["doc_id"], p["start"], p["end"], p["text"])
        assert p["url"] == f"{root}/doc/{p['doc_id']}?start={p['start']}&end={p['end']}"

    asked = await call(session, "ask_library", question=SEA)
    assert not asked["declined"] and "five to six weeks" in asked["answer"]
    assert asked["citations"]
    for c in asked["citations"]:
        await verified(c["doc_id"], c["start"], c["end"], c["quote"])
        if c["emphasis"]:  # the answer itself, inside the quote, as the reader marks it
            assert c["start"] <= c["emphasis"][0] < c["emphasis"][1] <= c["end"]
        assert f"[{c['number']}]" in asked["answer"] and c["url"] in asked["answer"]
    declined = await call(session, "ask_library", question=CAKE)
    assert declined["declined"] and declined["citations"] == [] and declined["related"]
    for r in declined["related"]:  # the closest passages, not an answer; verbatim all the same
        await verified(r["doc_id"], r["start"], r["end"], r["quote"])

    doc_id = asked["citations"][0]["doc_id"]
    whole = await call(session, "get_document", doc_id=doc_id)
    assert whole["text"] == bot.document(doc_id).text and whole["length"] == len(whole["text"])
    c = asked["citations"][0]
    around = await call(session, "get_document", doc_id=doc_id, start=c["start"], end=c["end"])
    assert around["before"] == whole["text"][max(0, c["start"] - 300):c["start"]]
    assert around["after"] == whole["text"][c["end"]:c["end"] + 300] != ""

    listed = await call(session, "list_documents")
    assert listed["total"] == len(listed["documents"]) >= 5 and doc_id in {d["doc_id"] for d in listed["documents"]}
    titled = await call(session, "list_documents", query="lithium")
    assert {d["title"] for d in titled["documents"]} == {"Shipping lithium batteries to Europe"}

    # Refusals come back as tool errors the agent can read.
    for tool, arguments, words in (
            ("get_document", {"doc_id": "no-such-document"}, "No document"),
            ("get_document", {"doc_id": doc_id, "start": 0, "end": whole["length"] + 1}, "not within the document"),
            ("ask_library", {"question": "x" * (Config().max_question_chars + 1)}, "max_question_chars"),
            ("search_library", {"query": SEA, "k": 51}, "k")):
        result = await session.call_tool(tool, arguments)
        assert result.is_error and words in result.content[0].text, (tool, result.content)


def test_over_stdio(built):
    bot, folder, _ = built
    server = StdioServerParameters(command=sys.executable, args=["-m", "assistant.cli", "mcp", "--index", str(folder)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})

    async def main():
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await exercise(session, bot, "http://127.0.0.1:7860")  # the links point at `assistant serve`

    asyncio.run(asyncio.wait_for(main(), 300))


@pytest.fixture(scope="module")
def base(built):
    bot, _, _ = built
    with running(create_app(bot, Config(api_token=TOKEN))) as url:
        yield url


async def over_http(url: str, token: str, work) -> None:
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await work(session)


def test_over_streamable_http(built, base):
    bot, _, _ = built
    asyncio.run(over_http(base, TOKEN, lambda session: exercise(session, bot, base)))


def test_http_needs_the_token(base):
    with pytest.raises(Exception) as raised:
        asyncio.run(over_http(base, "wrong", lambda session: session.initialize()))
    assert "error" in str(raised.value).lower()
    refused = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"Accept": "application/json, text/event-stream", "Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    # Stateless: no event stream to hold open, no session to end (the chat mounted at / answers them: 404).
    for method in ("GET", "DELETE"):
        assert httpx.request(method, f"{base}/mcp", headers={"Authorization": f"Bearer {TOKEN}"},
                             timeout=10).status_code == 404


def test_the_question_log_names_mcp_and_openai(built, tmp_path):
    import openai

    from assistant import Assistant
    from assistant.log.questions import utcnow

    logged = Config(question_log=True)
    bot = Assistant.open(shutil.copytree(built[1], tmp_path / "index"), logged)  # the log writes into the index
    try:
        with running(create_app(bot, logged)) as url:
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
            sdk.chat.completions.create(model="seller-assistant", messages=[{"role": "user", "content": SEA}])
            list(sdk.chat.completions.create(model="seller-assistant", stream=True,
                                             messages=[{"role": "user", "content": CAKE}]))

            async def work(session):
                await session.initialize()
                await call(session, "ask_library", question=SEA)

            asyncio.run(over_http(url, "none", work))
        assert bot.questions.flush(30)
        entries = sorted(bot.questions.store.entries(utcnow() - timedelta(days=1)), key=lambda e: e.asked_at)
        assert [(e.surface, e.question, e.declined) for e in entries] == [
            ("openai", SEA, False), ("openai", CAKE, True), ("mcp", SEA, False)]
    finally:
        bot.close()


def test_get_document_reads_a_long_text_in_bounded_windows(built, base, monkeypatch):
    bot, _, _ = built
    monkeypatch.setattr(web_mcp, "MAX_DOCUMENT_CHARS", 100)  # the fixture's documents are shorter than the bound

    async def work(session):
        await session.initialize()
        doc = (await call(session, "list_documents", query="lithium"))["documents"][0]
        text = bot.document(doc["doc_id"]).text
        read, start = "", 0
        while start is not None:
            window = await call(session, "get_document", doc_id=doc["doc_id"], start=start)
            assert len(window["text"]) <= 100
            read, start = read + window["text"], window["next_start"]
        assert read == text and len(text) > 300

    asyncio.run(over_http(base, TOKEN, work))
