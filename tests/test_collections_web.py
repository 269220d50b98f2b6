"""Collections on every surface (issue #32), on both stores: a token for one collection cannot read, search,
open a document of, or ask about another on REST, the chat's Gradio API, OpenAI, MCP, /doc pages, Insights and
its CSV; uploads into a collection and changes need the right to change it."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import openai
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from assistant import Assistant, Config
from assistant.store.collections import token_hash
from assistant.web import create_app
from test_collections import bot, doc_of, two_warehouses, warehouses  # noqa: F401  (fixtures)
from test_limits import gradio_call
from test_serve import running

ADMIN, SZ, NB, SZ_READ = "admin-secret", "shenzhen-team", "ningbo-team", "shenzhen-reader"
TOKENS = (f"shenzhen sha256={token_hash(SZ)} read=sz write=sz",
          f"ningbo sha256={token_hash(NB)} read=nb write=nb",
          f"sz-reader sha256={token_hash(SZ_READ)} read=sz")
FEE = "仓储费是每立方米每天多少钱？"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served(bot):  # noqa: F811
    """(url, bot) of a server with two warehouse collections, an admin_token and per-collection tokens."""
    two_warehouses(bot)
    config = bot.config.replace(admin_token=ADMIN, tokens=TOKENS, question_log=True)
    logged = Assistant(bot.index, config)
    with running(create_app(logged, config)) as url:
        yield url, logged


def test_rest_reads_only_the_tokens_collections(served):
    url, bot = served
    ningbo, shenzhen = doc_of(bot, "ningbo"), doc_of(bot, "shenzhen")
    with httpx.Client(base_url=url, timeout=120, headers=auth(SZ)) as api:
        assert [c["id"] for c in api.get("/api/collections").json()["collections"]] == ["sz"]
        answer = api.post("/api/ask", json={"question": FEE}).json()  # no collection named: its own
        assert {c["doc_id"] for c in answer["citations"]} == {shenzhen} and "2元" in answer["answer"]
        for refused in (api.post("/api/ask", json={"question": FEE, "collection": "nb"}),
                        api.get("/api/search", params={"q": FEE, "collection": "nb"}),
                        api.get(f"/api/documents/{ningbo}"),
                        api.get("/api/documents", params={"collection": "nb"}),
                        api.get("/api/insights", params={"collection": "nb"}),
                        api.get("/api/insights/questions.csv", params={"collection": "nb"})):
            assert refused.status_code == 404, refused.text
            assert "宁波" not in refused.text
        # Unknown and unreadable look the same.
        assert api.get("/api/search", params={"q": FEE, "collection": "nowhere"}).json() == \
            {"detail": "no collection 'nowhere'"}
        assert api.get("/api/search", params={"q": FEE, "collection": "nb"}).json() == \
            {"detail": "no collection 'nb'"}
        hits = api.get("/api/search", params={"q": FEE, "k": 10}).json()["hits"]
        assert hits and {h["doc_id"] for h in hits} <= {shenzhen, doc_of(bot, "handbook")}
        listed = api.get("/api/documents").json()
        assert listed["total"] == 2
        assert api.get(f"/api/documents/{shenzhen}").json()["collections"] == ["sz"]
        assert api.get(f"/doc/{ningbo}").status_code == 404 and api.get(f"/doc/{shenzhen}").status_code == 200
        # Its own collection's Insights and CSV (it may change the collection); not the whole library's.
        assert api.get("/api/insights", params={"collection": "sz"}).json()["totals"]["questions"] >= 1
        csv = api.get("/api/insights/questions.csv", params={"collection": "sz"}).text
        assert FEE in csv and "宁波" not in csv
        assert api.get("/api/insights").status_code in (401, 403)
    with httpx.Client(base_url=url, timeout=120) as anonymous:  # open_collections: the default only
        assert anonymous.get(f"/doc/{shenzhen}").status_code == 404
        assert anonymous.get(f"/doc/{doc_of(bot, 'filler-3')}").status_code == 200
    with httpx.Client(base_url=url, timeout=120, headers=auth("not-a-token")) as wrong:
        assert wrong.get("/api/collections").status_code == 401
    with httpx.Client(base_url=url, timeout=120, headers=auth(ADMIN)) as admin:
        ids = [c["id"] for c in admin.get("/api/collections").json()["collections"]]
        assert ids == ["default", "sz", "nb"]
        answer = admin.post("/api/ask", json={"question": FEE, "collection": "nb"}).json()
        assert {c["doc_id"] for c in answer["citations"]} == {ningbo} and "5元" in answer["answer"]
        csv = admin.get("/api/insights/questions.csv").text
        assert ",sz" in csv and ",nb" in csv  # the question log records the collection


def test_changes_need_the_right_to_change_the_collection(served):
    url, bot = served
    ningbo, shenzhen = doc_of(bot, "ningbo"), doc_of(bot, "shenzhen")
    with httpx.Client(base_url=url, timeout=120) as api:
        files = {"files": ("a.md", "# 温州仓\n\n温州仓的仓储费是每立方米每天9元。".encode())}
        assert api.post("/api/documents", params={"collection": "nb"}, files=files,
                        headers=auth(SZ)).status_code == 404
        assert api.post("/api/documents", params={"collection": "sz"}, files=files,
                        headers=auth(SZ_READ)).status_code == 403
        assert api.post("/api/collections", json={"id": "x", "name": "X"}, headers=auth(SZ)).status_code == 403
        assert api.post("/api/collections/sz", json={"name": "深圳"}, headers=auth(SZ_READ)).status_code == 403
        assert api.post("/api/collections/sz/documents", json={"doc_ids": [ningbo]},
                        headers=auth(SZ)).status_code == 404  # it cannot read that document
        assert api.delete(f"/api/documents/{shenzhen}", headers=auth(SZ)).status_code in (401, 403)
        # The admin shares a document; the shenzhen team takes it out of its collection: it stays in the other.
        assert api.post("/api/collections/sz/documents", json={"doc_ids": [ningbo]},
                        headers=auth(ADMIN)).status_code == 200
        out = api.delete(f"/api/collections/sz/documents/{ningbo}", headers=auth(SZ))
        assert out.status_code == 200 and out.json()["collections"] == ["nb"]
        assert api.get(f"/api/documents/{ningbo}", headers=auth(NB)).status_code == 200
        created = api.post("/api/collections", json={"id": "legal", "name": "法务"}, headers=auth(ADMIN))
        assert created.status_code == 201 and created.json()["name"] == "法务"
        assert api.delete("/api/collections/sz", headers=auth(ADMIN)).status_code == 409  # not empty
        assert api.delete("/api/collections/legal", headers=auth(ADMIN)).status_code == 204


def test_openai_models_are_the_collections_the_key_reads(served):
    url, bot = served
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=SZ, max_retries=0, timeout=120)
    assert [m.id for m in sdk.models.list()] == ["seller-assistant", "sz"]
    reply = sdk.chat.completions.create(model="sz", messages=[{"role": "user", "content": FEE}])
    assert "2元" in reply.choices[0].message.content
    assert {c["doc_id"] for c in reply.choices[0].message.model_extra["citations"]} == {doc_of(bot, "shenzhen")}
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.chat.completions.create(model="nb", messages=[{"role": "user", "content": FEE}])
    assert refused.value.code == "model_not_found"
    admin = openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN, max_retries=0, timeout=120)
    assert [m.id for m in admin.models.list()] == ["seller-assistant", "default", "sz", "nb"]
    reply = admin.chat.completions.create(model="nb", messages=[{"role": "user", "content": FEE}])
    assert "5元" in reply.choices[0].message.content


def test_gradio_api_and_mcp_keep_to_the_tokens_collections(served):
    url, bot = served
    ningbo = doc_of(bot, "ningbo")
    with httpx.Client(base_url=url, timeout=120) as client:
        event, data = gradio_call(client, "ask_in", [FEE, [], "nb"], **auth(SZ))
        assert event == "error" and "no collection 'nb'" in json.dumps(data)
        event, data = gradio_call(client, "ask_in", [FEE, [], "sz"], **auth(SZ))
        assert event == "complete" and "2元" in data[0]["answer"]
        event, data = gradio_call(client, "ask", [FEE, []], **auth(NB))  # its own collection
        assert event == "complete" and "5元" in data[0]["answer"]
        # The open chat reads open_collections only (here the default), whatever the page's state says.
        ids = {"conversation": "c" * 20, "client": "d" * 20}
        event, data = gradio_call(client, "chat", [FEE, [], {**ids, "collection": "sz"}])
        assert event == "complete" and "sa-error" in data[0] and "“sz”" in data[0]
        event, data = gradio_call(client, "chat", [FEE, [], ids])
        assert event == "complete" and "/doc/" in data[0]
        assert doc_of(bot, "shenzhen") not in data[0] and ningbo not in data[0]

    async def agent():
        async with (httpx2.AsyncClient(headers=auth(SZ), timeout=120) as http,
                    streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
                    ClientSession(read, write) as session):
            await session.initialize()
            listed = await session.call_tool("list_collections", {})
            assert [c["id"] for c in listed.structured_content["collections"]] == ["sz"]
            for tool, arguments in (("ask_library", {"question": FEE, "collection": "nb"}),
                                    ("search_library", {"query": FEE, "collection": "nb"}),
                                    ("list_documents", {"collection": "nb"}),
                                    ("get_document", {"doc_id": ningbo})):
                result = await session.call_tool(tool, arguments)
                assert result.is_error, (tool, result.content)
            asked = await session.call_tool("ask_library", {"question": FEE})
            assert "2元" in asked.structured_content["answer"]

    asyncio.run(agent())


def test_a_server_that_queues_changes_for_workers_refuses_an_upload_into_a_collection(bot):  # noqa: F811
    if bot.config.store == "sqlite":
        pytest.skip("workers share a PostgreSQL library")
    from assistant.web.app import job_queue

    two_warehouses(bot)
    with running(create_app(bot, bot.config, job_queue(bot, bot.config, ingest=False))) as url:
        files = {"files": ("a.md", "# 温州仓\n\n温州仓的仓储费是每立方米每天9元。".encode())}
        refused = httpx.post(f"{url}/api/documents", params={"collection": "sz"}, files=files, timeout=60)
        assert refused.status_code == 409 and "/api/collections/sz/documents" in refused.json()["detail"]
