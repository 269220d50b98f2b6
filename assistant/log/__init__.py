"""Log: what was asked and what users thought of the answers, and what it says (Insights).

In: each answered or declined question (an `Entry`, with its conversation `Turn`) and votes, from
`core.Assistant`. Out: conversations, the feedback, and `insights`: grouped problem questions, the documents
cited most and never, CSV exports, read from the question log and the store (not from an `Assistant`).
`questions.QuestionLog` writes in the background to SQLite beside the index, or to PostgreSQL.

May import: `store`, `models`, `document`, `text`, `config`. Never `ingest`, `answer`, `core`, `web`.
"""
