"""The OpenAI-compatible chat API as its clients use it: the official `openai` SDK against a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from assistant import Config
from assistant.answer.compose import DECLINE
from assistant.web import create_app
from test_serve import CAKE, FOLLOW_UP, SEA, running

TOKEN = "openai-test-token"


@pytest.fixture(scope="module")
def base(built) -> Iterator[str]:
    bot, _, _ = built
    with running(create_app(bot, Config(api_token=TOKEN))) as url:
        yield url


@pytest.fixture(scope="module")
def sdk(base) -> openai.OpenAI:
    # No retries: a refusal must reach the test as it came, not after the SDK tried again.
    return openai.OpenAI(base_url=f"{base}/v1", api_key=TOKEN, max_retries=0, timeout=120)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def check_citations(base: str, citations: list[dict]) -> None:
    """Each citation's quote is the stored document's text[start:end], and its link opens that quote."""
    assert citations
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        for n, cited in enumerate(citations, 1):
            assert cited["number"] == n
            doc = c.get(f"/api/documents/{cited['doc_id']}").json()
            assert cited["quote"] == doc["text"][cited["start"]:cited["end"]]
            assert cited["title"] == doc["title"]
            page = f"{base}/doc/{cited['doc_id']}?start={cited['start']}&end={cited['end']}"
            emphasis = cited.get("emphasis")  # the answer itself, where the reader marks it
            assert cited["url"] == page + (f"&answer_start={emphasis[0]}&answer_end={emphasis[1]}" if emphasis else "")
            assert c.get(cited["url"]).status_code == 200


def test_models_lists_the_assistant(sdk):
    assert [m.id for m in sdk.models.list()] == ["seller-assistant"]


def test_answer_with_its_sources_and_citations(sdk, base):
    reply = sdk.chat.completions.create(model="seller-assistant", messages=user(SEA),
                                        temperature=0.7, top_p=0.9, max_tokens=20, seed=1)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "five to six weeks" in choice.message.content
    citations = choice.message.model_extra["citations"]
    check_citations(base, citations)
    assert reply.model_extra["citations"] == citations and reply.model_extra["declined"] is False
    # A UI that shows only text keeps each [n] and its source: the title and a link to the quote.
    answer, sources = choice.message.content.split("\n\nSources:\n")
    for cited, line in zip(citations, sources.split("\n"), strict=True):
        assert f"[{cited['number']}]" in answer
        assert line == f"- [{cited['number']}] {cited['title']}: {cited['url']}"
    # The sampling fields change nothing: the answer quotes the library.
    assert sdk.chat.completions.create(model="seller-assistant", messages=user(SEA)).choices[0].message.content \
        == choice.message.content


def test_streamed_answer_in_openai_chunks(sdk, base):
    whole = sdk.chat.completions.create(model="seller-assistant", messages=user(SEA)).choices[0].message
    chunks = list(sdk.chat.completions.create(model="seller-assistant", messages=user(SEA), stream=True))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    cited = whole.model_extra["citations"]
    assert last.choices[0].delta.model_extra["citations"] == last.model_extra["citations"] == cited
    check_citations(base, last.model_extra["citations"])
    # The SDK stops at [DONE] without showing it; the stream ends with it.
    with httpx.stream("POST", f"{base}/v1/chat/completions", timeout=120, headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"model": "seller-assistant", "messages": user(SEA), "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: {") for line in lines[:-1])


def test_follow_up_takes_the_earlier_messages_as_history(sdk):
    first = sdk.chat.completions.create(model="seller-assistant", messages=user(SEA)).choices[0].message
    alone = sdk.chat.completions.create(model="seller-assistant", messages=user(FOLLOW_UP))
    assert alone.model_extra["declined"]
    follow = sdk.chat.completions.create(model="seller-assistant", messages=[
        {"role": "system", "content": "You are a helpful assistant."}, *user(SEA),
        {"role": "assistant", "content": first.content}, *user(FOLLOW_UP)])
    assert not follow.model_extra["declined"]
    assert "third of air freight" in follow.choices[0].message.content


def test_a_decline_is_an_ordinary_message(sdk, built):
    """It says so, then lists the closest passages as related, not as an answer: verbatim, with offsets."""
    bot, _, _ = built
    reply = sdk.chat.completions.create(model="seller-assistant", messages=user(CAKE))
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    related = choice.message.model_extra["related"]
    assert related and reply.model_extra["related"] == related
    for r in related:
        assert r["quote"] == bot.document(r["doc_id"]).text[r["start"]:r["end"]]
        assert r["url"] in choice.message.content
    assert choice.message.content.startswith(DECLINE["en"] + "\n\nRelated, but not an answer:\n- “")
    assert choice.message.model_extra["citations"] == [] and reply.model_extra["declined"]
    streamed = list(sdk.chat.completions.create(model="seller-assistant", messages=user(CAKE), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == choice.message.content
    assert streamed[-1].model_extra["related"] == related


def test_a_wrong_token_is_the_sdks_authentication_error(base):
    wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="not-the-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.chat.completions.create(model="seller-assistant", messages=user(SEA))
    assert raised.value.status_code == 401
    assert raised.value.body["type"] == "authentication_error" and raised.value.body["code"] == "invalid_api_key"
    assert "Bearer" in raised.value.body["message"]
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.AuthenticationError):
        list(wrong.chat.completions.create(model="seller-assistant", messages=user(SEA), stream=True))


def test_the_limits_of_api_ask_hold(sdk):
    limit = Config().max_question_chars
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as raised:
            sdk.chat.completions.create(model="seller-assistant", messages=user("x" * (limit + 1)), stream=stream)
        assert raised.value.status_code == 413
        assert "max_question_chars" in raised.value.body["message"]
        assert raised.value.body["type"] == "invalid_request_error" and raised.value.body["param"] == "messages"
    with pytest.raises(openai.APIStatusError) as raised:  # over the body bound: refused before it is read
        sdk.chat.completions.create(model="seller-assistant", messages=user("x" * 1_100_000))
    assert raised.value.status_code == 413 and "larger than 1000000 bytes" in raised.value.body["message"]
    history = user("a question") * (Config().max_history_messages + 1)
    with pytest.raises(openai.UnprocessableEntityError, match="max_history_messages"):
        sdk.chat.completions.create(model="seller-assistant", messages=[*history, *user(SEA)])


def test_a_failure_is_a_server_error_in_openai_shape(sdk, built, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the index is gone")

    monkeypatch.setattr(built[0], "ask", fail)
    with pytest.raises(openai.InternalServerError) as raised:
        sdk.chat.completions.create(model="seller-assistant", messages=user(SEA))
    assert raised.value.body == {"message": "The answer failed (RuntimeError); see the server log.",
                                 "type": "server_error", "param": None, "code": None}
    # Streamed, the failure comes after the role chunk: the SDK raises it from the error event.
    with pytest.raises(openai.APIError, match=r"The answer failed \(RuntimeError\)"):
        list(sdk.chat.completions.create(model="seller-assistant", messages=user(SEA), stream=True))


def test_malformed_requests_are_refused_in_openai_shape(sdk, base):
    with pytest.raises(openai.BadRequestError, match="last message"):
        sdk.chat.completions.create(model="seller-assistant",
                                    messages=[*user(SEA), {"role": "assistant", "content": "An answer."}])
    with pytest.raises(openai.BadRequestError, match="not a chat completion request"):
        sdk.chat.completions.create(model="seller-assistant", messages=[])
    with pytest.raises(openai.UnprocessableEntityError, match="empty"):
        sdk.chat.completions.create(model="seller-assistant", messages=user("   "))
    # What a page on another site can post without a CORS preflight.
    r = httpx.post(f"{base}/v1/chat/completions", content='{"messages": [{"role": "user", "content": "q"}]}',
                   headers={"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]["message"]
