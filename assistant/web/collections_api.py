"""Collections over HTTP (assistant.store.collections):

    GET    /api/collections                          those the token reads: id, name, documents, chunks, write
    POST   /api/collections                          {"id", "name"}: create one (whoever may change the library)
    POST   /api/collections/{id}                     {"name"}: rename it (whoever may change it)
    DELETE /api/collections/{id}                     delete an empty one (whoever may change the library)
    POST   /api/collections/{id}/documents           {"doc_ids": [...], "from": ID?}: add documents, or move them
    DELETE /api/collections/{id}/documents/{doc_id}  take a document out; one in no other collection is removed
                                                     from the library (202 with a job)

A collection the token may not read is answered 404 as if it did not exist; a change it may not make, 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import fastapi
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..config import Config
from ..core import Assistant
from ..store.collections import CollectionError, Grant
from .access import change_refusal, may_read_document

if TYPE_CHECKING:
    from ..ingest.jobs import JobQueue


class NewCollection(BaseModel):
    id: str = Field(description="1-32 lower-case letters, digits, '-' or '_' (e.g. amazon, tk-shop).")
    name: str = Field("", description="The display name, Chinese allowed (default: the id).")


class Renamed(BaseModel):
    name: str


class Members(BaseModel):
    doc_ids: list[str] = Field(min_length=1, max_length=1000)
    from_: str | None = Field(None, alias="from", description="Move them from this collection (else: add them).")


def collections_router(bot: Assistant, config: Config, jobs: JobQueue, origins: tuple[str, ...],
                       authorize) -> fastapi.APIRouter:
    router = fastapi.APIRouter(prefix="/api/collections", tags=["collections"])

    def refusal_of(request: Request, collection: str | None) -> tuple[int, str] | None:
        same = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return change_refusal({k.lower(): v for k, v in request.headers.items()},
                              request.client.host if request.client else "", same, config, origins, collection, bot)

    def check(request: Request, collection: str | None) -> None:
        """403/404 unless the request may change `collection` (None: the whole library, e.g. create one)."""
        if refusal := refusal_of(request, collection):
            raise HTTPException(refusal[0], refusal[1],
                                headers={"WWW-Authenticate": "Bearer"} if refusal[0] == 401 else None)

    def run(operation):
        try:
            return operation()
        except CollectionError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @router.get("")
    def listed(request: Request, grant: Grant = Depends(authorize)):
        """The collections this token may read, the default first: id, name, documents, chunks, and whether this
        request may change each (`write`); `admin`: whether it may create and delete collections."""
        readable = grant.readable(bot.collections.list())
        return {"collections": [{**c.to_dict(), "write": refusal_of(request, c.id) is None} for c in readable],
                "admin": refusal_of(request, None) is None}

    @router.post("", status_code=201, dependencies=[Depends(authorize)])
    def create(body: NewCollection, request: Request):
        check(request, None)
        return run(lambda: bot.collections.create(body.id, body.name)).to_dict()

    @router.post("/{collection}", dependencies=[Depends(authorize)])
    def rename(collection: str, body: Renamed, request: Request):
        check(request, collection)
        return run(lambda: bot.collections.rename(collection, body.name)).to_dict()

    @router.delete("/{collection}", status_code=204, dependencies=[Depends(authorize)])
    def delete(collection: str, request: Request):
        check(request, collection)
        check(request, None)
        run(lambda: bot.collections.delete(collection))

    @router.post("/{collection}/documents")
    def add(collection: str, body: Members, request: Request, grant: Grant = Depends(authorize)):
        """Add documents to the collection (documents this token reads), or move them into it `from` another
        (both changed by this token)."""
        check(request, collection)
        if body.from_ is not None:
            check(request, body.from_)
            run(lambda: bot.collections.move(body.doc_ids, body.from_, collection))
        else:
            if unread := next((d for d in body.doc_ids if bot.document(d) is None
                               or not may_read_document(grant, d, bot)), None):
                raise HTTPException(404, f"No document with id {unread!r}.")
            run(lambda: bot.collections.add(body.doc_ids, collection))
        return run(lambda: bot.collections.require(collection)).to_dict()

    @router.delete("/{collection}/documents/{doc_id:path}", dependencies=[Depends(authorize)])
    def take_out(collection: str, doc_id: str, request: Request):
        """Take a document out of the collection. One that is in no other collection is removed from the library
        (its file moves to .removed/): 202 with the job, as DELETE /api/documents/{doc_id}."""
        check(request, collection)
        only_here = run(lambda: bot.collections.take_out([doc_id], collection))
        if not only_here:
            return {"doc_id": doc_id, "collections": bot.collections.of(doc_id)}
        job = jobs.remove(doc_id)
        return JSONResponse({"job": job.id, "url": f"/api/jobs/{job.id}", "state": job.state}, 202)

    return router
