"""Bounds on what a request carries, the same on every path: REST, the chat, Gradio's API, the widget.

A question is at most `max_question_chars` long; a history has at most `max_history_messages`
messages of `max_history_chars` characters in all; no text may hold a lone surrogate (JSON can
encode one, "\\ud800", but it is not a character and breaks encoding it again). Bodies are
bounded before they are read (`security.Guard`); what a follow-up takes from the history is
bounded in `answer.respond._with_context`.
"""

from __future__ import annotations

import re

from ..config import Config
from ..core import Refused, check_length
from ..text import detect_lang

__all__ = ["Refused", "check_history", "check_question", "check_text", "in_language", "recent_history"]

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ZH = {"question": "问题", "query": "查询", "history": "对话历史"}


def in_language(refused: Refused, asked: object) -> str:
    """The refusal in the language of what was asked (a Chinese question gets a Chinese 413), or in both
    when nothing in it tells (an empty question, one not made of text)."""
    lang = detect_lang(asked) if isinstance(asked, str) and asked.strip() else ""
    return refused.message(lang) if lang in ("zh", "en") else f"{refused.zh} / {refused.en}"


def check_text(text: str, what: str) -> None:
    if m := _SURROGATE.search(text):
        raise Refused(422, f"The {what} contains a lone surrogate (U+{ord(m.group()):04X}), which is not a "
                           "character; send valid Unicode text.",
                      f"{_ZH.get(what, what)}中含有无效字符（U+{ord(m.group()):04X}），请发送有效的 Unicode 文本。")


def check_question(question: object, config: Config, what: str = "question") -> str:
    """The question stripped, or Refused: not text or empty (422), too long (413), not valid Unicode (422)."""
    if not isinstance(question, str):
        raise Refused(422, f"The {what} must be a string.", "问题必须是文本。")
    q = question.strip()
    if not q:
        raise Refused(422, f"The {what} is empty.", "请先输入问题。")
    check_length(q, config.max_question_chars, what)  # Assistant.ask refuses it too: the same words
    check_text(q, what)
    return q


def check_history(history: list[dict], config: Config) -> list[dict]:
    """The history unchanged, or Refused: too many messages (422), too many characters (413), bad text (422)."""
    if len(history) > config.max_history_messages:
        raise Refused(422, f"The history has {len(history)} messages; the limit is {config.max_history_messages} "
                           "(max_history_messages). Send only the recent conversation.",
                      f"对话历史有 {len(history)} 条消息，上限是 {config.max_history_messages} 条。请只发送最近的对话。")
    size = sum(len(m["content"]) for m in history)
    if size > config.max_history_chars:
        raise Refused(413, f"The history holds {size} characters; the limit is {config.max_history_chars} "
                           "(max_history_chars). Send only the recent conversation.",
                      f"对话历史共 {size} 个字符，上限是 {config.max_history_chars} 个。请只发送最近的对话。")
    for m in history:
        check_text(m["content"], "history")
    return history


def recent_history(history: list[dict], config: Config) -> list[dict]:
    """The most recent messages that fit the history limits: what the chat page sends grows with the
    conversation, and only its end is used (the previous question, the recent turns)."""
    kept: list[dict] = []
    size = 0
    for m in reversed(history[-config.max_history_messages:]):
        size += len(m["content"])
        if size > config.max_history_chars:
            break
        kept.append(m)
    return check_history(kept[::-1], config)

