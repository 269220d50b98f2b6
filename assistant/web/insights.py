"""Feedback on answers, and the Insights view over the question log.

    POST /api/feedback                 👍/👎 on an answer (its `id`), after 👎 a reason and a comment
    GET  /api/insights                 declined and 👎 questions by topic, citations, counts per day
    GET  /api/insights/questions.csv   the questions of the period, with outcome and votes
    GET  /api/insights/feedback.csv    the votes of the period, with their questions
    GET  /insights                     the Insights page (beside the Library view)

Feedback takes the api_token like all of /api. Insights show what people asked, so reading them takes
what changing the library takes (`security.write_refusal`): the admin_token (else the api_token), and
with neither set, a request from this machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Literal

import fastapi
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from ..config import Config
from ..core import Assistant
from ..log.insights import feedback_csv, questions_csv
from ..log.questions import MAX_COMMENT
from .access import change_refusal

MAX_DAYS = 3660
_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class FeedbackRequest(BaseModel):
    id: str = Field(pattern=_ID_PATTERN, description="The answer's `id` (POST /api/ask).")
    vote: Literal["up", "down", "none"] = Field(description="👍, 👎, or `none` to take this client's vote back.")
    reason: Literal["wrong_answer", "out_of_context", "not_in_library", "other"] | None = Field(
        None, description="After a 👎: what was wrong.")
    comment: str = Field("", max_length=MAX_COMMENT, description="After a 👎: in the voter's words.")
    client_id: str = Field("api", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                           description="Who votes: one vote per answer and client, changed by voting again.")


def insights_router(bot: Assistant, config: Config, origins: tuple[str, ...], authorize, static) -> fastapi.APIRouter:
    router = fastapi.APIRouter()

    def logged() -> None:
        if bot.questions is None:
            raise HTTPException(409, "The question log is off (question_log = false): there is no feedback or "
                                "Insights to keep or show.")

    def may_read(request: Request) -> None:
        # ?collection=: the Insights of one collection, which a token that may change it may read too.
        same = f"{request.url.scheme}://{request.headers.get('host', '')}"
        refusal = change_refusal({k.lower(): v for k, v in request.headers.items()},
                                 request.client.host if request.client else "", same, config, origins,
                                 request.query_params.get("collection") or None, bot)
        collection = request.query_params.get("collection")
        if refusal is None:
            if collection and not bot.collections.exists(collection):
                raise HTTPException(404, f"No collection {collection!r}.")
            return
        if refusal[0] == 404:
            raise HTTPException(404, refusal[1])
        if refusal[0] == 401:
            token = "admin_token" if config.admin_token else "api_token"
            raise HTTPException(401, f"Insights show what people asked: reading them needs the {token} "
                                "(`Authorization: Bearer <token>`).", headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, "Insights show what people asked: without an admin_token (or api_token) they can "
                            "only be read on this machine, from this server's own pages.")

    @router.post("/api/feedback", dependencies=[Depends(authorize), Depends(logged)], tags=["feedback"],
                 responses={404: {"description": "No such answer in the log"}, 409: {"description": "Log off"},
                            503: {"description": "The log could not be written"}})
    def feedback(request: FeedbackRequest):
        """👍 or 👎 on an answer, by its `id`; after 👎 optionally a reason and a comment. One vote per answer
        and `client_id` (the chat and the widget send their browser's), changed by voting again."""
        value = {"up": 1, "down": -1, "none": 0}[request.vote]
        try:
            found = bot.feedback(request.id, value, request.reason or "", request.comment, request.client_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except Exception as exc:
            raise HTTPException(503, f"The feedback could not be stored ({type(exc).__name__}); try again.") from exc
        if not found:
            raise HTTPException(404, f"No answer {request.id!r} in the question log (it may be older than "
                                "question_log_days).")
        return {"id": request.id, "vote": request.vote}

    reads = [Depends(may_read), Depends(logged)]
    days_query = Query(30, ge=1, le=MAX_DAYS, description="The period: the last this many days.")
    collection_query = Query(None, description="Of the questions asked in this collection (its documents only).")

    @router.get("/api/insights", dependencies=reads, tags=["insights"])
    def insights(days: int = days_query,
                 sort: Literal["largest", "newest"] = Query("largest", description="Groups: largest or newest first."),
                 collection: str | None = collection_query):
        """What the question log says about the period: totals; questions per day with the declined and 👎
        shares; the declined and 👎 questions grouped by topic, each group with its count, languages, first
        and last time, examples with their feedback, and the library's closest documents; the documents
        cited most and those never cited."""
        return bot.insights(days, sort, collection or None)

    def csv(pieces: Iterator[str], name: str) -> StreamingResponse:
        # Streamed: the log may hold a flood. The byte-order mark makes spreadsheet programs read the file as
        # UTF-8 (Chinese questions).
        return StreamingResponse(itertools.chain(["\ufeff"], pieces), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"',
                                          "Cache-Control": "no-store"})

    @router.get("/api/insights/questions.csv", dependencies=reads, tags=["insights"])
    def questions(days: int = days_query, collection: str | None = collection_query):
        """The logged questions of the period as CSV: time, surface, language, question, outcome and reason,
        the passages cited, seconds, votes (and client, where question_log_clients keeps it)."""
        return csv(questions_csv(bot.questions, days, collection or None), f"questions-{days}d.csv")

    @router.get("/api/insights/feedback.csv", dependencies=reads, tags=["insights"])
    def votes(days: int = days_query, collection: str | None = collection_query):
        """The votes on the period's answers as CSV, with the reason, the comment and the question."""
        return csv(feedback_csv(bot.questions, days, collection or None), f"feedback-{days}d.csv")

    @router.get("/insights", include_in_schema=False)
    def page():
        return FileResponse(static / "insights.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    return router
