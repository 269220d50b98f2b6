"""Keyword side of retrieval: jieba tokenisation for Chinese (and plain words for English).

The tokens are stored in an SQLite FTS5 table (see store.py), which supplies BM25 scoring, so
keyword search is updated in the same transaction as everything else.
"""

from __future__ import annotations

import logging
import re

import jieba

jieba.setLogLevel(logging.WARNING)

_WORD = re.compile(r"\w", re.U)

# Function words that carry no topic; only dropped from queries (documents keep every token).
STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 也 就 都 而 及其 并 很 这 那 这个 那个 哪 哪些 哪个 什么 怎么 怎样 如何 为什么 吗 呢 吧 啊
    呀 有 没有 我 你 他 她 它 我们 你们 他们 会 能 可以 要 应该 是否 一个 一种 请问 请 多少 几 谁 被 把 对 从 向 给
    a an the of to in on at for by with from as is are was were be been being do does did doing have has had
    what which who whom whose when where why how can could should would will shall may might must i you he she
    it we they me him her us them my your his its our their this that these those and or but if then so not no
    about into than too very any some all there here just also only own same such up down out over under again
    """.split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; Chinese is segmented by jieba's search mode (words and sub-words)."""
    return [t.lower() for t in jieba.lcut_for_search(text) if _WORD.search(t)]


def query_terms(text: str) -> list[str]:
    """Distinct content tokens of a question, in order."""
    seen: dict[str, None] = {}
    for token in tokenize(text):
        if token not in STOPWORDS:
            seen.setdefault(token, None)
    return list(seen)


def match_expression(terms: list[str]) -> str:
    """An FTS5 MATCH expression that matches any of the terms."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
