"""The Gradio chat: streamed answers with their sources, examples, visible errors; and its API (/chat, /ask)."""

from __future__ import annotations

import html
import json
import logging
import re
from urllib.parse import urlsplit

import gradio as gr
from gradio.components.chatbot import TextMessage

from ..answer.compose import Answer
from ..config import Config
from ..core import Assistant
from ..log.questions import MAX_COMMENT, REASONS, new_id, valid_id
from ..store.collections import CollectionError, open_grant
from .access import grant_of, scope
from .limits import Refused, check_history, check_question, recent_history
from .render import LABELS, answer_from_dict, lang_of, render_answer, render_error, render_partial

log = logging.getLogger("assistant.web")

# Chat events answered at once; more wait in Gradio's queue (at most QUEUE_SIZE of them).
CHAT_CONCURRENCY = 4
QUEUE_SIZE = 64
# Latin letters from Gradio's bundled Source Sans Pro, Chinese from the system's CJK fonts
# (Gradio's fonts have no CJK glyphs). Nothing is fetched from a font service.
FONT_STACK = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Hiragino Sans GB",
              "Microsoft YaHei", "WenQuanYi Micro Hei", "sans-serif")
EXAMPLES = ["品牌应该all in直播带货吗？", "Should a brand go all in on live-stream selling?", "网红营销有哪些风险？"]


def plain_history(history: list[dict] | None) -> list[dict]:
    """Gradio's chat history as the plain {"role", "content"} messages `Assistant.ask` takes.

    Gradio 6 gives content as a list of {"type": "text", "text": ...}; assistant messages are the
    HTML this module rendered, so only their answer text is kept (without the sources). A question
    that failed is left out with its error, so that it does not become the context of the next one.
    """
    out: list[dict] = []
    for m in history if isinstance(history, list) else []:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            continue
        content = m.get("content")
        items = content if isinstance(content, list) else [content]
        text = "\n".join(i if isinstance(i, str) else str(i.get("text") or "") if isinstance(i, dict) else ""
                         for i in items).strip()
        if role == "assistant" and text.startswith('<div class="sa-error"'):
            if out and out[-1]["role"] == "user":
                out.pop()
            continue
        if role == "assistant":
            text = text.split('<div class="sa-sources', 1)[0]  # the sources, or a decline's related passages
            text = re.sub(r"<br\s*/?>", "\n", text)
            text = re.sub(r"</p\s*>", "\n\n", text)
            text = html.unescape(re.sub(r"<[^>]*>", "", text)).strip()
        if text:
            out.append({"role": role, "content": text})
    return out




class TextChatbot(gr.Chatbot):
    """A Chatbot that shows the user's own messages as text.

    Gradio renders every message as (sanitised) HTML, so a question holding `<div style=...>` or
    `<form>` would be laid out as markup. The user's text is escaped on the way to the page and
    unescaped on the way back; the assistant's messages are HTML made by `render`.
    """

    is_template = True  # the page shows it with Gradio's own Chatbot, not as a custom component

    def postprocess(self, value):
        data = super().postprocess(value)
        for message in data.root:
            if message.role == "user":
                for item in message.content:
                    if isinstance(item, TextMessage):
                        item.text = html.escape(item.text, quote=False)
        return data

    def preprocess(self, payload):
        messages = super().preprocess(payload)
        for message in messages:
            if message["role"] == "user":
                for item in message["content"]:
                    if item.get("type") == "text":
                        item["text"] = html.unescape(item["text"])
        return messages


# A long question (a pasted article, or one over max_question_chars with its refusal below) scrolls
# inside its bubble instead of pushing the answer out of view.
CSS = """
.sa-answer p { margin: 0 0 .55em; }
.sa-answer p:last-child { margin-bottom: 0; }
.sa-declined { border-left: 3px solid #f59e0b; padding-left: .7em; }
.sa-error { color: #b91c1c; border-left: 3px solid #dc2626; padding-left: .7em; font-weight: 600; }
a.sa-cite { font-weight: 600; color: var(--color-accent); text-decoration: none; padding: 0 .1em; border-radius: 3px; }
a.sa-cite:hover, a.sa-cite:focus-visible { background: var(--color-accent-soft); text-decoration: underline; }
sup.sa-ref { color: var(--body-text-color-subdued); font-size: .72em; font-weight: 400; opacity: .8; }
.sa-sources { margin-top: .9em; padding-top: .5em; border-top: 1px solid var(--border-color-primary); font-size: .93em; }
.sa-sources-title { font-weight: 600; margin-bottom: .35em; }
.sa-doc { margin: .45em 0 .6em; }
.sa-doc-head { line-height: 1.45; }
.sa-doc-head a.sa-title { font-weight: 600; color: inherit; }
.sa-meta { color: var(--body-text-color-subdued); margin-left: .3em; word-break: break-word; }
.sa-source { margin: .15em 0 0 .2em; }
.sa-source > summary { display: flex; gap: .35em; align-items: baseline; cursor: pointer; list-style: none; }
.sa-source > summary::-webkit-details-marker { display: none; }
.sa-source > summary::before { content: "▸"; color: var(--body-text-color-subdued); }
.sa-source[open] > summary::before { content: "▾"; }
.sa-line { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.sa-page { color: var(--body-text-color-subdued); white-space: nowrap; }
.sa-num { font-weight: 600; color: var(--color-accent); }
.sa-source.sa-flash > summary { background: #fde68a; border-radius: 3px; }
.sa-passage { margin: .3em 0 .2em !important; padding: .45em .75em !important; border-left: 3px solid var(--color-accent) !important;
  background: var(--background-fill-secondary); line-height: 1.55; font-style: normal; }
.sa-passage mark, mark.sa-quote { background: #fde68a; color: #111827; padding: 0 .1em; border-radius: 2px; }
.sa-answer-span { font-weight: 700; text-decoration: underline; text-decoration-color: #ea580c;
  text-decoration-thickness: 2px; text-underline-offset: 3px; }
a.sa-open { font-size: .92em; }
.sa-same { margin: .2em 0 0 .2em; font-size: .92em; color: var(--body-text-color-subdued); }
.message-row.user-row .message-content { max-height: 12em; overflow-y: auto; }
.sa-header h1 { margin: .2em 0 0; font-size: 1.45em; }
.sa-header p { margin: .2em 0 .3em; color: var(--body-text-color-subdued); }
html.sa-widget .sa-header, html.sa-widget footer { display: none !important; }
html.sa-widget .gradio-container, html.sa-widget .gradio-container .main { padding: 4px !important; }
.sa-top { align-items: flex-start; }
.sa-new { flex-grow: 0 !important; min-width: max-content !important; align-self: center; }
.sa-reason { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px; }
.sa-reason.sa-beside { position: fixed; z-index: 60; max-width: 560px; background: var(--background-fill-primary);
                       box-shadow: 0 4px 16px rgba(0, 0, 0, .18); }
.sa-thanks { position: fixed; z-index: 60; padding: 4px 10px; border-radius: 6px; font-size: .92em;
             background: var(--color-green-100, #dcfce7); color: var(--color-green-800, #166534); }
"""

# The widget's iframe opens /?embed=widget: a compact chat without the page header and footer.
# Clicking an answer's [n] opens and shows that source in the message (its link, the document
# page, is what a page without this script follows). Gradio labels each message with its HTML;
# the label is replaced by the message's text, for screen readers.
HEAD = """<script>
if (new URLSearchParams(location.search).get("embed") === "widget") document.documentElement.classList.add("sa-widget");
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a.sa-cite");
  if (!link) return;
  var message = link.closest(".message-content") || link.parentElement;
  while (message && !message.querySelector(".sa-sources")) message = message.parentElement;
  var number = /(?:^|\s)(sa-n\d+)(?:\s|$)/.exec(link.className);
  var source = number && message && message.querySelector(".sa-source." + number[1]);
  if (!source) return;
  event.preventDefault();
  source.open = true;
  source.scrollIntoView({block: "nearest", behavior: "smooth"});
  source.classList.add("sa-flash");
  setTimeout(function () { source.classList.remove("sa-flash"); }, 1500);
}, true);
new MutationObserver(function () {
  document.querySelectorAll("[aria-label*='<']").forEach(function (el) {
    var box = el.querySelector(".sa-answer, .sa-error");
    var text = (box ? box.innerText : el.innerText).replace(/\\s+/g, " ").trim().slice(0, 300);
    if (el.getAttribute("aria-label") !== text) el.setAttribute("aria-label", text);
  });
}).observe(document.documentElement, {subtree: true, childList: true, attributes: true, attributeFilter: ["aria-label"]});
// After a 👎 the reason form opens beside the answer voted on (below the input box it was off-screen once a
// conversation had a few turns), and after Send a note beside that answer says it was received.
var saVoted = null, saSent = false;
function saRow(el) { return el.closest(".message-row") || el.closest(".message") || el.parentElement; }
function saPlace() {
  var panel = document.querySelector(".sa-reason");
  var shown = !!panel && panel.getClientRects().length > 0;
  if (!shown || !saVoted || !saVoted.isConnected) {
    if (saSent && saVoted && !shown) saThank();
    return;
  }
  var r = saVoted.getBoundingClientRect();
  var left = Math.max(8, Math.min(r.left, innerWidth - panel.offsetWidth - 8)) + "px";
  var top = Math.max(8, Math.min(r.bottom + 4, innerHeight - panel.offsetHeight - 8)) + "px";
  // Only what changed: each write is a mutation this function observes.
  if (!panel.classList.contains("sa-beside")) panel.classList.add("sa-beside");
  if (panel.style.left !== left) panel.style.left = left;
  if (panel.style.top !== top) panel.style.top = top;
}
function saThank() {
  saSent = false;
  var r = saVoted.getBoundingClientRect(), note = document.createElement("div");
  note.className = "sa-thanks"; note.setAttribute("role", "status");
  note.textContent = "✓ 谢谢，已记下 Thank you, noted";
  note.style.left = Math.max(8, r.left) + "px";
  note.style.top = Math.max(8, Math.min(r.bottom + 4, innerHeight - 40)) + "px";
  document.body.appendChild(note);
  setTimeout(function () { note.remove(); }, 6000);
}
document.addEventListener("click", function (event) {
  var target = event.target.closest ? event.target : event.target.parentElement;
  var dislike = target.closest("button[aria-label='Dislike'], button[aria-label='Disliked']");
  if (dislike) { saVoted = saRow(dislike); saSent = false; }
  if (target.closest(".sa-reason .sa-send")) saSent = true;
  if (target.closest(".sa-reason .sa-skip")) saSent = false;
  setTimeout(saPlace, 50);
}, true);
new MutationObserver(saPlace).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                                                  attributeFilter: ["class", "style"]});
addEventListener("scroll", saPlace, true);
addEventListener("resize", saPlace);
</script>"""


def server_root(request: gr.Request | None) -> str:
    """The URL this server was reached at ("http://host:port"), so that links in a chat embedded on
    another site (the web component) lead back here. The Host header was checked by `security.Guard`."""
    if request is None or not request.headers.get("host"):
        return ""
    scheme = request.headers.get("x-forwarded-proto") or request.request.url.scheme
    return f"{scheme}://{request.headers['host']}"


def header_text(root: str = "") -> str:
    return ("# Seller Assistant · 卖家助手\nAnswers quote your article library, with sources. "
            f"回答引用资料库原文，并注明出处。 [资料库 Library →]({root}/library)")


def _lang(text: object) -> str:
    return lang_of(text) if isinstance(text, str) else "en"  # Gradio's API passes on any JSON value


# What the page keeps in the browser's localStorage: its conversation (shown again after a reload) and its
# own id (one vote per answer per browser). Gradio encrypts a BrowserState with `secret`, which it sends to
# the page: fixed here, so that a restarted server, or another one behind the same name, reads it back.
BROWSER_KEY, BROWSER_SECRET = "seller-assistant", "seller-assistant-ids"
REASON_CHOICES = [("答案不对 Wrong answer", "wrong_answer"), ("引文断章取义 Quote out of context", "out_of_context"),
                  ("资料库里没有 Not in the library", "not_in_library"), ("其他 Other", "other")]
assert [v for _, v in REASON_CHOICES] == list(REASONS)
_ANSWER_ID = re.compile(r"\bsa-aid-([A-Za-z0-9_-]{16,64})")


def browser_ids(ids: object, fresh_conversation: bool = False) -> dict:
    """The page's {"conversation", "client"} ids: those it holds, or new ones where it holds none (or junk); and
    the collection its conversation asks in ("collection"), kept for the next conversation too."""
    ids = ids if isinstance(ids, dict) else {}
    kept = {"collection": ids["collection"]} if isinstance(ids.get("collection"), str) else {}
    return {"conversation": ids.get("conversation") if valid_id(ids.get("conversation")) and not fresh_conversation
            else new_id(), "client": ids.get("client") if valid_id(ids.get("client")) else new_id(), **kept}


def surface_of(request: gr.Request | None, ids: object) -> str:
    """Which page asked: the widget's frame opens /?embed=widget, which its requests name as their Referer.
    Without the page's ids it is a program calling Gradio's API."""
    if not isinstance(ids, dict):
        return "gradio_api"
    referer = request.headers.get("referer", "") if request is not None else ""
    return "widget" if "embed=widget" in urlsplit(referer).query else "chat"


def client_of(request: gr.Request | None) -> dict:
    if request is None:
        return {}
    return {"ip": request.client.host if request.client else "", "user_agent": request.headers.get("user-agent", "")}


def answer_id_of(message: object) -> str | None:
    """The log id `render_answer` put in a message (the value of a Like event)."""
    m = _ANSWER_ID.search(message if isinstance(message, str) else json.dumps(message))
    return m.group(1) if m else None


def create_chat(bot: Assistant, config: Config):
    """The Gradio Blocks of the chat: streaming answers, sources with passages, examples, visible errors."""

    def grant(request: gr.Request | None):
        """The page is open (no token: open_collections); a program calling Gradio's API may send one."""
        bearer = (request.headers.get("authorization") or "") if request else ""
        return grant_of(bearer, config) if bearer else open_grant(config)

    def respond(message: str, history: list[dict], ids: dict | None = None, request: gr.Request = None):
        # Failures are shown as a message in the chat, not raised: a raised gr.Error leaves Gradio's
        # chat input disabled. The message says what happened; the traceback goes to the server log.
        lang = _lang(message)
        try:
            question = check_question(message, config)
            context = recent_history(plain_history(history), config)
            # The page's picker keeps its choice in the page's ids (not an input of its own: Gradio's "chat" API
            # would then want one more argument from every program calling it).
            picked = ids.get("collection") if isinstance(ids, dict) and isinstance(ids.get("collection"), str) else None
            collection = scope(grant(request) or open_grant(config), picked, bot)
        except Refused as refused:
            yield render_error(refused.message(lang))
            return
        except CollectionError:
            yield render_error(LABELS[lang]["no_collection"].format(name=picked))
            return
        try:
            text = ""
            surface = surface_of(request, ids)
            conversation = ids["conversation"] if surface != "gradio_api" and valid_id(ids.get("conversation")) else None
            for piece in bot.ask_stream(question, context, surface=surface, conversation=conversation,
                                        client=client_of(request), collection=collection):
                if isinstance(piece, Answer):
                    yield render_answer(piece, bot, server_root(request))
                    return
                text += piece
                yield render_partial(text)
        except Exception as exc:
            log.exception("answering in the chat failed")
            yield render_error(LABELS[lang]["failed"].format(kind=type(exc).__name__))

    def ask(question: str, history: list[dict] | None = None, request: gr.Request = None) -> dict:
        """Answer a question from the library: {answer, declined, lang, citations, meta}, as POST /api/ask does.

        history: earlier messages, [{"role": "user" | "assistant", "content": "..."}], for follow-up questions.
        """
        return answered(question, history, None, request)

    def ask_in(question: str, history: list[dict] | None = None, collection: str | None = None,
               request: gr.Request = None) -> dict:
        """`ask` in one collection of the library (GET /api/collections lists those the token reads).

        history: earlier messages, [{"role": "user" | "assistant", "content": "..."}], for follow-up questions.
        """
        return answered(question, history, collection, request)

    def answered(question: str, history: list[dict] | None, collection: str | None, request: gr.Request | None):
        # The programmatic twin of POST /api/ask takes the same token; the chat page stays open.
        bearer = (request.headers.get("authorization") or "") if request else ""
        granted = grant_of(bearer, config)
        if granted is None:
            raise gr.Error("A valid API token is required: send `Authorization: Bearer <token>`.",
                           print_exception=False)
        lang = _lang(question)
        try:
            q = check_question(question, config)
            context = check_history(plain_history(history), config)
            scoped = scope(granted, collection, bot)
        except Refused as refused:
            raise gr.Error(refused.message(lang), print_exception=False) from None
        except CollectionError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return bot.ask(q, context, surface="gradio_api", client=client_of(request), collection=scoped).to_dict()

    def opened(held: object, request: gr.Request) -> tuple[dict, gr.Dropdown]:
        """The page's ids, and the collection picker: shown when the library has collections, with those the page
        may read; its choice (kept in the ids) is the widget's data-collection (?collection=), else the
        conversation's, else the first."""
        page = browser_ids(held)
        page.pop("collection", None)
        if not bot.collections.configured():
            return page, gr.Dropdown(visible=False)
        readable = (grant(request) or open_grant(config)).readable(bot.collections.list())
        ids = [c.id for c in readable]
        wanted = [request.query_params.get("collection") if request else None, browser_ids(held).get("collection")]
        chosen = next((c for c in wanted if c in ids), ids[0] if ids else None)
        if chosen:
            page["collection"] = chosen
        return page, gr.Dropdown(choices=[(f"资料集 Collection · {c.name} ({c.id})" if c.name != c.id
                                           else f"资料集 Collection · {c.id}", c.id) for c in readable],
                                 value=chosen, visible=bool(ids))

    def remember(held: object, picked: str | None) -> dict:
        return {**browser_ids(held), "collection": picked} if picked else browser_ids(held)

    logged = bot.questions is not None
    with gr.Blocks(title="Seller Assistant · 卖家助手", fill_height=True, analytics_enabled=False) as demo:
        ids = gr.BrowserState(None, storage_key=BROWSER_KEY, secret=BROWSER_SECRET)
        with gr.Row(elem_classes="sa-top"):
            # Markdown, not gr.HTML: gr.HTML evaluates templates with `new Function`, which the CSP forbids.
            header = gr.Markdown(header_text(), elem_classes="sa-header")
            new_chat = gr.Button("新对话 New conversation", size="sm", variant="secondary", elem_classes="sa-new",
                                 scale=0)
        # Above the input: which collection this conversation asks in (hidden in a library without collections).
        picker = gr.Dropdown([], label="资料集 Collection", show_label=False, container=False, visible=False,
                             interactive=True, elem_classes="sa-collection", allow_custom_value=False)
        chat = gr.ChatInterface(
            respond,
            chatbot=TextChatbot(
                show_label=False, scale=1, height="100%", min_height=320,
                render_markdown=False,  # messages are HTML made here, everything from documents escaped
                sanitize_html=True, allow_tags=False, latex_delimiters=[],
                feedback_options=("Like", "Dislike") if logged else None,
                buttons=["copy"],
                placeholder="<strong>Ask about your library</strong><br>问一个关于资料库的问题",
            ),
            textbox=gr.Textbox(placeholder="Ask a question… 输入问题…", show_label=False, lines=1, max_lines=6,
                               submit_btn=True, stop_btn=True),
            additional_inputs=[ids],
            examples=[[e] for e in EXAMPLES],  # lists: the page's ids and collection are additional inputs
            run_examples_on_click=True,
            cache_examples=False,
            api_name="chat",
            api_description="Answer a question; returns the chat message (HTML with the sources).",
            fill_height=True,
            analytics_enabled=False,
        )
        # After a 👎: what was wrong, optionally (the vote itself is already stored).
        disliked = gr.State("")
        with gr.Column(visible=False, elem_classes="sa-reason") as reason_panel:
            reason = gr.Radio(REASON_CHOICES, label="哪里不对？（可选） What was wrong? (optional)")
            comment = gr.Textbox(label="说明 Details", max_length=MAX_COMMENT, lines=2, max_lines=4,
                                 placeholder="可选 Optional", elem_classes="sa-comment")
            with gr.Row():
                send = gr.Button("发送 Send", size="sm", variant="primary", elem_classes="sa-send")
                skip = gr.Button("跳过 Skip", size="sm", elem_classes="sa-skip")
        gr.api(ask, api_name="ask")
        gr.api(ask_in, api_name="ask_in")  # a separate name: Gradio's API wants every argument of a function

        # The web component shows this page inside another site's page, where "/library" is that site's
        # (a 404): once loaded, the link names this server, as the page's own request reached it.
        def absolute_header(request: gr.Request) -> str:
            return header_text(server_root(request))

        demo.load(absolute_header, None, header, queue=False, api_visibility="private", show_progress="hidden")
        picker.input(remember, [ids, picker], ids, queue=False, api_visibility="private", show_progress="hidden")

        def restore(held: object, request: gr.Request):
            """The page's ids and picker, and its conversation as it stood (with this browser's votes), after a
            reload."""
            page, choice = opened(held, request)
            turns = bot.conversation(page["conversation"])
            messages, answer_ids = [], []
            for turn in turns:
                answer = answer_from_dict(turn.answer)
                messages += [{"role": "user", "content": turn.question},
                             {"role": "assistant", "content": render_answer(answer, bot, server_root(request))}]
                answer_ids.append(answer.meta.get("id"))
            votes = bot.questions.votes([a for a in answer_ids if a], page["client"]) if turns else {}
            shown = [{1: "Like", -1: "Dislike"}.get(votes.get(a, 0)) for a in answer_ids]
            return page, choice, gr.Chatbot(value=messages, feedback_value=shown), messages

        def new_conversation(held: object):
            return browser_ids(held, fresh_conversation=True), [], [], gr.Column(visible=False)

        def vote(held: object, data: gr.LikeData):
            answer_id = answer_id_of(data.value)
            value = 1 if data.liked is True else -1 if data.liked is False else 0
            if answer_id is None or not _feedback(answer_id, value, browser_ids(held)["client"]):
                return gr.Column(visible=False), ""
            return gr.Column(visible=value < 0), answer_id if value < 0 else ""

        def give_reason(held: object, answer_id: str, why: str | None, text: str):
            if valid_id(answer_id) and _feedback(answer_id, -1, browser_ids(held)["client"], why or "", text or ""):
                gr.Info("谢谢，已记下。 Thank you, noted.")
            return gr.Column(visible=False), "", None, ""

        def _feedback(answer_id: str, value: int, client: str, why: str = "", text: str = "") -> bool:
            try:
                return bot.feedback(answer_id, value, why, text, client_id=client)
            except Exception:  # the store is down: the reader is told, the chat goes on
                log.exception("storing feedback failed")
                gr.Warning("反馈没能保存，请稍后再试。 The feedback could not be saved; please try again later.")
                return False

        if logged:
            chatbot, state = chat.chatbot, chat.chatbot_state
            demo.load(restore, ids, [ids, picker, chatbot, state], queue=False, api_visibility="private",
                      show_progress="hidden")
            chatbot.like(vote, ids, [reason_panel, disliked], queue=False, api_visibility="private")
            send.click(give_reason, [ids, disliked, reason, comment], [reason_panel, disliked, reason, comment],
                       queue=False, api_visibility="private")
            skip.click(lambda: (gr.Column(visible=False), ""), None, [reason_panel, disliked], queue=False,
                       api_visibility="private")
        else:
            demo.load(opened, ids, [ids, picker], queue=False, api_visibility="private", show_progress="hidden")
        # The chatbot's own 🗑 starts a new conversation too: cleared, it must not come back after a reload.
        for trigger in (new_chat.click, chat.chatbot.clear):
            trigger(new_conversation, ids, [ids, chat.chatbot, chat.chatbot_state, reason_panel], queue=False,
                    api_visibility="private")
    demo.queue(default_concurrency_limit=CHAT_CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def theme():
    return gr.themes.Default(
        primary_hue="orange",
        font=(gr.themes.LocalFont("Source Sans Pro"), *FONT_STACK),
        font_mono=(gr.themes.LocalFont("IBM Plex Mono"), "Noto Sans Mono CJK SC", "monospace"),
    )
