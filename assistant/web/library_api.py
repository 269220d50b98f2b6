"""The library over HTTP: list, upload (background indexing jobs), remove; and the Library page.

    GET    /api/documents           a page of documents with their metadata (?q= searches titles)
    POST   /api/documents           multipart upload of one or many files, or JSON {"urls": [...]}; 202 with a job
    GET    /api/jobs/{id}           a job's progress and each file's outcome
    DELETE /api/documents/{doc_id}  remove a document; answers 202 with a job
    DELETE /api/files/{name}        remove a library file (one that failed to index too); 202 with a job
    GET    /library                 the Library view (not part of the widget)

Reads take the api_token like all of /api; writes are checked by `security.write_refusal`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import fastapi
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Config
from ..core import Assistant
from ..ingest.fetch import MAX_URL_CHARS
from ..ingest.library import Jobs, LibraryBusy, LibraryError
from ..store.collections import CollectionError, Grant
from .access import change_refusal, grant_of

if TYPE_CHECKING:  # assistant.ingest.jobs loads the PostgreSQL driver, which a folder store's server need not
    from ..ingest.jobs import JobQueue

MAX_PAGE = 200
MAX_LINKS_BODY = 100_000


def library_router(bot: Assistant, config: Config, jobs: JobQueue, origins: tuple[str, ...], authorize,
                   static) -> fastapi.APIRouter:
    router = fastapi.APIRouter()

    def may_write(request: Request) -> None:
        # ?collection=: a change of that collection only (an upload into it, taking a document out of it),
        # which a token that may change it may make too (assistant.web.access).
        same = f"{request.url.scheme}://{request.headers.get('host', '')}"
        refusal = change_refusal({k.lower(): v for k, v in request.headers.items()},
                                 request.client.host if request.client else "", same, config, origins,
                                 request.query_params.get("collection") or None, bot)
        if refusal:
            raise HTTPException(refusal[0], refusal[1], headers={"WWW-Authenticate": "Bearer"} if refusal[0] == 401
                                else None)

    @router.get("/api/documents", tags=["library"])
    def documents(q: str = Query("", max_length=300, description="Words in the title."),
                  offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=MAX_PAGE),
                  collection: str | None = Query(None, description="The documents of this collection."),
                  grant: Grant = Depends(authorize)):
        """The library's documents, newest first: title, date, source, file, format, pages, chunks, when added."""
        try:
            collection = grant.scope(collection, bot.collections)
        except CollectionError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        total, docs = bot.documents(q, offset, limit, collection)
        return {"total": total, "offset": offset, "limit": limit, "documents": [asdict(d) for d in docs]}

    @router.post("/api/documents", status_code=202, dependencies=[Depends(may_write)], tags=["library"],
                 responses={401: {"description": "Missing or wrong admin token"}, 413: {"description": "Too large"},
                            429: {"description": "Too many library changes waiting"}})
    async def upload(request: Request):
        """Upload files (multipart field `files`, one or many), or add links (JSON `{"urls": [...]}`: each page
        is fetched by the server, within fetch_timeout and max_fetch_mb, public addresses only unless
        allowed_fetch_hosts names the host); they are indexed in the background.

        Answers with the job to poll: GET /api/jobs/{id}."""
        kind = request.headers.get("content-type", "").lower()
        if kind.startswith("application/json"):
            return await add_links(request)
        if not kind.startswith("multipart/form-data"):
            raise HTTPException(415, "Send files as multipart/form-data in the field `files`, or links as JSON "
                                "{\"urls\": [...]}.")
        try:
            form = await request.form(max_files=config.max_upload_files, max_fields=config.max_upload_files)
        except StarletteHTTPException as exc:  # more parts than allowed, or a malformed body
            if "Too many" in str(exc.detail):
                raise HTTPException(413, f"{exc.detail}: send at most {config.max_upload_files} files in one "
                                    "upload (max_upload_files).") from None
            raise HTTPException(422, f"The multipart body could not be read ({exc.detail}); send the files as "
                                "multipart/form-data field `files`.") from None
        try:
            files = [(f.filename or "upload", await f.read()) for f in form.getlist("files") if isinstance(f, UploadFile)]
        finally:
            await form.close()
        if not files:
            raise HTTPException(422, "No files: send them as multipart/form-data field `files`.")
        try:
            jobs.ready()
        except LibraryError as exc:
            raise HTTPException(409, str(exc)) from None
        job = _queued(lambda: jobs.upload(files, **into(request)))
        return {"job": job.id, "url": f"/api/jobs/{job.id}", "state": job.state}

    def may_read_jobs(request: Request) -> None:
        # A job names the files an admin uploaded: with an admin_token, reading one needs it too.
        if config.admin_token:
            may_write(request)
        elif grant_of(request.headers.get("authorization", ""), config) is None:
            raise HTTPException(401, "A valid API token is required: send `Authorization: Bearer <token>`.",
                                headers={"WWW-Authenticate": "Bearer"})

    async def add_links(request: Request):
        body = await request.body()
        if len(body) > MAX_LINKS_BODY:
            raise HTTPException(413, f"A list of links is at most {MAX_LINKS_BODY} bytes.")
        try:
            urls = json.loads(body)["urls"]
        except (ValueError, KeyError, TypeError):
            raise HTTPException(422, "Send links as JSON {\"urls\": [\"https://…\", …]}.") from None
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
            raise HTTPException(422, "`urls` must be a non-empty list of links.")
        if len(urls) > config.max_upload_files:
            raise HTTPException(413, f"Add at most {config.max_upload_files} links at a time (max_upload_files).")
        if too_long := next((u for u in urls if len(u) > MAX_URL_CHARS), None):
            raise HTTPException(422, f"A link is at most {MAX_URL_CHARS} characters: {too_long[:80]}…")
        try:
            jobs.ready()
        except LibraryError as exc:
            raise HTTPException(409, str(exc)) from None
        job = _queued(lambda: jobs.add_urls([u.strip() for u in urls], **into(request)))
        return {"job": job.id, "url": f"/api/jobs/{job.id}", "state": job.state}

    @router.get("/api/jobs/{job_id}", dependencies=[Depends(may_read_jobs)], tags=["library"],
                responses={404: {"description": "Unknown job"}})
    def job(job_id: str):
        """A library job: state (queued, running, done, failed), stage and progress, each file's outcome."""
        found = jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"No job with id {job_id!r} (a server without workers keeps its jobs "
                                "while it runs).")
        return found.to_dict()

    @router.delete("/api/documents/{doc_id}", status_code=202, dependencies=[Depends(may_write)], tags=["library"],
                   responses={404: {"description": "Unknown id"}, 409: {"description": "Cannot be removed alone"}})
    def remove(doc_id: str, collection: str | None = Query(None, description="Take it out of this collection "
                                                             "only; one in no other is removed from the library.")):
        """Remove a document: its file moves to the library's .removed/ folder, and the index drops it."""
        if bot.document(doc_id) is None or collection and collection not in bot.collections.of(doc_id):
            raise HTTPException(404, f"No document with id {doc_id!r}.")
        if collection and not bot.collections.take_out([doc_id], collection):
            return JSONResponse({"doc_id": doc_id, "collections": bot.collections.of(doc_id)}, 200)
        job = _queued(lambda: jobs.remove(doc_id))
        return JSONResponse({"job": job.id, "url": f"/api/jobs/{job.id}", "state": job.state}, 202)

    @router.delete("/api/files/{name:path}", status_code=202, dependencies=[Depends(may_write)], tags=["library"],
                   responses={404: {"description": "No such file in the library"}})
    def remove_file(name: str):
        """Remove a library file by its path in the library (e.g. `uploads/report.pdf`): every document it
        brought goes, and so does a file that could not be indexed. It moves to the library's .removed/."""
        try:
            found = jobs.has_file(name)
        except LibraryError as exc:
            raise HTTPException(409, str(exc)) from None
        if not found:
            raise HTTPException(404, f"No file {name!r} in the library.")
        job = _queued(lambda: jobs.remove_file(name))
        return JSONResponse({"job": job.id, "url": f"/api/jobs/{job.id}", "state": job.state}, 202)

    def into(request: Request) -> dict:
        """An upload's collection (?collection=, checked by may_write), for the job."""
        collection = request.query_params.get("collection") or None
        if collection is not None and not bot.collections.exists(collection):
            raise HTTPException(404, f"No collection {collection!r}.")
        if collection is not None and not isinstance(jobs, Jobs):
            raise HTTPException(409, "This server queues library changes for `assistant worker` processes, which do "
                                "not take a collection yet: upload without one, then add the documents to it "
                                f"(POST /api/collections/{collection}/documents).")
        return {"collection": collection} if collection else {}

    @router.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page():
        return FileResponse(static / "library.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    return router


def _queued(submit):
    try:
        return submit()
    except LibraryBusy as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None
