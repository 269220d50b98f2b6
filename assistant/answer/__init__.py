"""Answer: a question in, an `Answer` with citations (or a decline in the question's language) out.

The stage in order: what the question names and asks (`asked`, with the `glossary`), the passages that
match it (`retrieve`), whether they can answer it at all, the quotes a `Picker` chooses (`compose`: scored,
or the trained reader's scores), the optional generated answer (`generate`), and `Citation`s whose quote is
always `document.text[start:end]`. `respond.Responder.answer` is the one function that takes a question
and returns an `Answer`; every rule that declines a question lives in this package.

May import: `store`, `models`, `document`, `text`, `config`. Never `ingest`, `log`, `core`, `web`.
"""

from .compose import Answer, Citation

__all__ = ["Answer", "Citation"]
