"""The `assistant` command: a thin layer over the Python API (index, ask, search, chat)."""

from __future__ import annotations

import json
import secrets
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import click

from . import Assistant, index_library, load_config
from .answer.compose import RELATED_LABEL, Answer, document_url, location_label
from .ingest.library import REMOVED, LibraryError
from .ingest.load import LoadError
from .store.base import IndexBusy, redact
from .store.collections import CollectionError, token_hash
from .store.factory import copy_library, open_store


def _config(ctx: click.Context, **overrides):
    try:
        return load_config(ctx.obj.get("config_path"), **overrides)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


def _open(ctx: click.Context, index: str | None, store: str | None = None) -> Assistant:
    try:
        return Assistant.open(index, _config(ctx, store=store))
    except (OSError, ValueError) as exc:  # OSError: no index folder, PostgreSQL unreachable
        raise click.ClickException(str(exc)) from exc


_store_option = click.option(
    "--store", default=None, metavar="URI",
    help="A postgresql:// URI to use instead of the index folder (default: the `store` setting, 'sqlite').")
_collection_option = click.option(
    "--collection", default=None, metavar="ID",
    help="Only this collection of the library (`assistant collections` lists them; default: the whole library).")


@contextmanager
def _progress_bars():
    from tqdm import tqdm

    bars = []

    def start(label: str, total: int):
        bar = tqdm(total=total, desc=label, unit={"reading": "file", "questions": "q"}.get(label, "chunk"),
                   file=sys.stderr, leave=False, disable=total == 0 or None)
        bars.append(bar)
        return bar.update

    try:
        yield start
    finally:
        for bar in bars:
            bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML configuration file (default: ./assistant.toml if present).")
@click.version_option(package_name="seller-assistant")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Seller Assistant: answers questions from your article library, citing the exact source text.

    Start with `assistant index` (reads ./corpus into ./index), then `assistant ask "..."`.
    """
    ctx.ensure_object(dict)["config_path"] = config_path


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@click.option("--rebuild", is_flag=True, help="Start from an empty index (needed to switch models).")
@_store_option
@click.pass_context
def index(ctx: click.Context, paths: tuple[str, ...], index_dir: str | None, rebuild: bool, store: str | None) -> None:
    """Index the library: files or folders (default: ./corpus).

    The index is brought in line with PATHS: new and changed files are added, files no longer
    there are removed, unchanged ones are skipped without re-embedding. Files that cannot be read
    are reported with the reason; the command fails only if no file could be read.
    """
    config = _config(ctx, store=store)
    folder = index_dir or config.index
    where = f"{folder}/" if config.store == "sqlite" else redact(config.store)
    try:
        with _progress_bars() as progress:
            report = index_library(list(paths) or None, folder, config, rebuild=rebuild, progress=progress)
    except (LoadError, ValueError, IndexBusy, ConnectionError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted: the previous index in {where} is unchanged.", err=True)
        sys.exit(130)
    cwd = Path.cwd()

    def show(p: str) -> str:
        path = Path(p)
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else p

    for label, items in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
        for p in items:
            click.echo(f"{label:>9}  {show(p)}")
    for p, reason in report.skipped:
        click.echo(f"{'skipped':>9}  {show(p)}: {reason}", err=True)
    for w in report.warnings:
        click.echo(f"{'warning':>9}  {w}", err=True)
    click.echo(
        f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped; "
        f"{report.documents} documents, {report.chunks} chunks ({report.chunks_embedded} embedded) in {where}"
    )
    if not report.readable:
        raise click.ClickException("no file of the library could be read; nothing is indexed")


def _server_url(config) -> str:
    """Where `assistant serve` with this configuration is reached: the document pages a citation opens."""
    host = "localhost" if config.host in ("0.0.0.0", "::") else config.host
    return f"http://{f'[{host}]' if ':' in host else host}:{config.port}"


def _print_answer(answer: Answer, as_json: bool, server: str) -> None:
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(answer.text)
    if answer.citations:
        click.echo()
    for c in answer.citations:
        where = ", ".join(x for x in (c.source, c.date, location_label(c.location, "en")) if x)
        click.echo(f"[{c.number}] {c.title}" + (f" ({where})" if where else ""))
        click.echo(f"    {server}{c.to_dict()['url']}")
    if answer.related:
        click.echo("\n" + RELATED_LABEL[answer.lang])
    for c in answer.related:
        click.echo(f"  “{' '.join(c.quote.split())}” — {c.title}")
        click.echo(f"    {server}{c.to_dict()['url']}")


@main.command()
@click.argument("question")
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: answer, declined, citations.")
@_store_option
@_collection_option
@click.pass_context
def ask(ctx: click.Context, question: str, index_dir: str | None, as_json: bool, store: str | None,
        collection: str | None) -> None:
    """Answer QUESTION from the library, with numbered citations."""
    bot = _open(ctx, index_dir, store)
    try:
        _print_answer(bot.ask(question, collection=collection), as_json, _server_url(bot.config))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("query")
@click.option("-k", "k", default=5, show_default=True, help="Number of passages.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default="hybrid", show_default=True)
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON hits.")
@_store_option
@_collection_option
@click.pass_context
def search(ctx: click.Context, query: str, k: int, mode: str, index_dir: str | None, as_json: bool,
           store: str | None, collection: str | None) -> None:
    """Show the passages that best match QUERY."""
    bot = _open(ctx, index_dir, store)
    try:
        hits = bot.search(query, k=k, mode=mode, collection=collection)
    except ValueError as exc:  # longer than max_question_chars, an unknown collection
        raise click.ClickException(str(exc)) from exc
    if as_json:
        fields = ("doc_id", "chunk_id", "title", "text", "start", "end", "page", "score", "same_text")
        click.echo(json.dumps([{f: getattr(h, f) for f in fields} for h in hits], ensure_ascii=False, indent=2))
        return
    for n, h in enumerate(hits, 1):
        page = f" p. {h.page}" if h.page else ""
        click.echo(f"{n}. [{h.score:.3f}] {h.title}{page}  {_server_url(bot.config)}{document_url(h.doc_id, h.start, h.end)}")
        click.echo("   " + h.text[:300].replace("\n", " ") + ("…" if len(h.text) > 300 else ""))
        if h.same_text:
            click.echo("   the same text is also in: " + ", ".join(h.same_text))


@main.command()
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@_store_option
@_collection_option
@click.pass_context
def chat(ctx: click.Context, index_dir: str | None, store: str | None, collection: str | None) -> None:
    """A conversation in the terminal; follow-up questions keep the context. Ctrl-D or 'exit' ends it."""
    bot = _open(ctx, index_dir, store)
    _known(bot, collection)
    history: list[dict] = []
    click.echo("Ask about your library (Ctrl-D or 'exit' to quit). 输入问题开始对话。")
    while True:
        try:
            question = click.prompt("?", prompt_suffix=" ").strip()
        except (EOFError, click.Abort):
            click.echo()
            return
        if question.lower() in ("exit", "quit", "退出"):
            return
        if not question:
            continue
        try:
            answer = bot.ask(question, history=history, collection=collection)
        except ValueError as exc:  # longer than max_question_chars: say so, and the conversation goes on
            click.echo(str(exc), err=True)
            continue
        _print_answer(answer, False, _server_url(bot.config))
        click.echo()
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]


@main.command()
@click.option("--search", "query", default="", help="Only documents whose title holds these words.")
@click.option("--limit", default=50, show_default=True, help="At most this many.")
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: total and documents.")
@_store_option
@_collection_option
@click.pass_context
def documents(ctx: click.Context, query: str, limit: int, index_dir: str | None, as_json: bool,
              store: str | None, collection: str | None) -> None:
    """List the library's documents, newest first: id, date, format, pages/chunks, title."""
    bot = _open(ctx, index_dir, store)
    total, docs = bot.documents(query, 0, limit, _known(bot, collection))
    if as_json:
        click.echo(json.dumps({"total": total, "documents": [asdict(d) for d in docs]}, ensure_ascii=False, indent=2))
        return
    for d in docs:
        size = f"{d.pages} p., {d.chunks} chunks" if d.pages else f"{d.chunks} chunks"
        click.echo(f"{d.doc_id}  {d.date or '-':<10}  {d.format:<5} {size:<16} {d.title or d.file}")
        for note in d.notes:  # what a limit cut from its file
            click.echo(f"    ! partly read: {note}")
    click.echo(f"{len(docs)} of {total} documents" + (f" matching {query!r}" if query else ""))


@main.command()
@click.argument("items", nargs=-1, required=True, metavar="FILE_OR_URL...")
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@_store_option
@click.option("--collection", default=None, metavar="ID",
              help="Into this collection (new documents into it only; `assistant collections` lists them).")
@click.pass_context
def add(ctx: click.Context, items: tuple[str, ...], index_dir: str | None, store: str | None,
        collection: str | None) -> None:
    """Add files and links to the library (its uploads/ folder) and index them, as the Library view does.

    A link (http:// or https://) is fetched, within fetch_timeout and max_fetch_mb; addresses of this
    machine or a private network only when allowed_fetch_hosts names the host. Prints each one's outcome
    (added, updated, unchanged, rejected and why); fails when nothing could be added."""
    bot = _open(ctx, index_dir, store)
    _known(bot, collection)
    urls = [i for i in items if i.lower().startswith(("http://", "https://"))]
    files = [i for i in items if i not in urls]
    try:
        with _progress_bars() as progress:
            outcomes = ((bot.add_files(files, progress, collection) if files else [])
                        + (bot.add_urls(urls, progress, collection) if urls else []))
    except (LibraryError, IndexBusy) as exc:
        raise click.ClickException(str(exc)) from exc
    for outcome in outcomes:
        where = f" → {outcome.stored_as}" if outcome.stored_as and outcome.status != "rejected" else ""
        why = f": {outcome.reason}" if outcome.status == "rejected" else ""
        click.echo(f"{outcome.status:>9}  {outcome.name}{where}{why}")
    if all(o.status == "rejected" for o in outcomes):
        raise click.ClickException("nothing was added")


@main.command()
@click.argument("doc_ids", nargs=-1)
@click.option("--file", "files", multiple=True, metavar="PATH",
              help="A library file by its path in the library folder (e.g. uploads/report.pdf), with every "
                   "document it brought; also one that could not be indexed. Repeatable.")
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@_store_option
@click.option("--collection", default=None, metavar="ID",
              help="Take the documents out of this collection only; one in no other collection is removed.")
@click.pass_context
def remove(ctx: click.Context, doc_ids: tuple[str, ...], files: tuple[str, ...], index_dir: str | None,
           store: str | None, collection: str | None) -> None:
    """Remove documents by id (see `assistant documents`), or library files with --file: the files move to
    the library's .removed/ folder, so a later `assistant index` does not bring them back."""
    if not doc_ids and not files:
        raise click.UsageError("name a document id, or a library file with --file")
    bot = _open(ctx, index_dir, store)
    _known(bot, collection)
    for name in files:
        try:
            with _progress_bars() as progress:
                bot.remove_file(name, progress)
        except (LookupError, LibraryError, IndexBusy, LoadError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{'removed':>9}  {name} (→ {REMOVED}/)")
    for doc_id in doc_ids:
        try:
            with _progress_bars() as progress:
                moved = bot.remove_document(doc_id, progress, collection)
        except (LookupError, LibraryError, CollectionError) as exc:
            raise click.ClickException(str(exc)) from exc
        except (IndexBusy, LoadError) as exc:  # the files were moved; the next `assistant index` drops them
            raise click.ClickException(f"{exc}; files already moved to {REMOVED}/ are dropped by the next "
                                       "`assistant index`") from exc
        if collection and bot.document(doc_id) is not None:
            click.echo(f"{'taken out':>9}  {doc_id} of {collection} (still in {', '.join(bot.collections.of(doc_id))})")
            continue
        click.echo(f"{'removed':>9}  {doc_id}" + (f" ({', '.join(moved)} → {REMOVED}/)" if moved else ""))


def _known(bot: Assistant, collection: str | None) -> str | None:
    """The collection named, or a ClickException naming the ones there are."""
    if collection is not None and not bot.collections.exists(collection):
        raise click.ClickException(f"no collection {collection!r}; there are: "
                                   + ", ".join(c.id for c in bot.collections.list()))
    return collection


@main.group(invoke_without_command=True)
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@_store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def collections(ctx: click.Context, index_dir: str | None, store: str | None, as_json: bool) -> None:
    """List the library's collections (named sets of its documents), or change them: create, rename, delete an
    empty one, add or move documents; hash-token makes a token for the `tokens` setting (docs/collections.md)."""
    ctx.obj["collections"] = (index_dir, store)
    if ctx.invoked_subcommand is not None:
        return
    listed = _open(ctx, index_dir, store).collections.list()
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in listed], ensure_ascii=False, indent=2))
        return
    for c in listed:
        click.echo(f"{c.id:<20} {c.documents:>6} documents {c.chunks:>8} chunks  {c.name}")


def _collections(ctx: click.Context, change) -> None:
    bot = _open(ctx, *ctx.obj["collections"])
    try:
        click.echo(change(bot.collections))
    except CollectionError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bot.close()


@collections.command("create")
@click.argument("collection_id")
@click.argument("name", required=False, default="")
@click.pass_context
def collections_create(ctx: click.Context, collection_id: str, name: str) -> None:
    """Create collection ID (a-z, 0-9, - and _) with a display NAME (Chinese allowed; default: the id)."""
    _collections(ctx, lambda c: f"created {c.create(collection_id, name).id}")


@collections.command("rename")
@click.argument("collection_id")
@click.argument("name")
@click.pass_context
def collections_rename(ctx: click.Context, collection_id: str, name: str) -> None:
    """Give collection ID a new display NAME (its id stays)."""
    _collections(ctx, lambda c: f"renamed {collection_id}: {c.rename(collection_id, name).name}")


@collections.command("delete")
@click.argument("collection_id")
@click.pass_context
def collections_delete(ctx: click.Context, collection_id: str) -> None:
    """Delete an empty collection (move or remove its documents first; the default one stays)."""
    _collections(ctx, lambda c: c.delete(collection_id) or f"deleted {collection_id}")


@collections.command("add")
@click.argument("collection_id")
@click.argument("doc_ids", nargs=-1, required=True)
@click.option("--from", "source", default=None, metavar="ID", help="Move them from this collection instead.")
@click.pass_context
def collections_add(ctx: click.Context, collection_id: str, doc_ids: tuple[str, ...], source: str | None) -> None:
    """Put documents (ids from `assistant documents`) into collection ID too, or move them --from another."""
    def change(c):
        if source is not None:
            c.move(list(doc_ids), source, collection_id)
        else:
            c.add(list(doc_ids), collection_id)
        return f"{collection_id}: {c.require(collection_id).documents} documents"

    _collections(ctx, change)


@collections.command("hash-token")
@click.argument("token", required=False)
def collections_hash_token(token: str | None) -> None:
    """Print the SHA-256 of TOKEN for the `tokens` setting (without TOKEN: a new random token, then its hash)."""
    if token is None:
        token = secrets.token_urlsafe(32)
        click.echo(f"token:  {token}")
    click.echo(f"sha256: {token_hash(token)}")


@main.command("eval")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--k", "k", default=5, show_default=True, help="Cut-off for hit@k and recall@k.")
@click.option("--limit", type=int, default=None, help="Only the first N questions of each set.")
@click.option("--half", type=click.Choice(["dev", "test"]), default=None,
              help="Only the even-numbered (dev) or odd-numbered (test) questions: tune on one, report the other.")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Keep each set's index in CACHE/<set> and reuse it (only new text is embedded).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_store_option
@click.pass_context
def eval_(ctx: click.Context, datasets: tuple[str, ...], k: int, limit: int | None, half: str | None,
          cache: str | None, as_json: bool, store: str | None) -> None:
    """Measure retrieval, answers, citations and speed on question sets (folders with docs.jsonl, queries.jsonl).

    Each set's documents are indexed into a temporary folder with the configured pipeline (with
    --store, into that database: give one set at a time, e.g. one copied with `assistant copy-index`).
    The format of a set is in the README ("Measuring quality on your own questions").
    """
    from .evaluate import DatasetError, check_dataset, evaluate, format_report

    config = _config(ctx, store=store)
    try:
        for dataset in datasets:  # every set, before the first one's indexing run
            check_dataset(dataset)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    results = []
    for dataset in datasets:
        with _progress_bars() as progress:
            results.append(evaluate(dataset, config, k, progress=progress, limit=limit, half=half, cache=cache))
        if not as_json:
            click.echo(format_report(results[-1]) + "\n")
    if as_json:
        click.echo(json.dumps(results[0] if len(results) == 1 else results, ensure_ascii=False, indent=2))


@main.command()
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@click.option("--host", default=None, help="Address to listen on (default: 127.0.0.1, this machine only).")
@click.option("--port", default=None, type=int, help="Port (default: 7860).")
@_store_option
@click.option("--store-readonly", default=None, metavar="URI",
              help="A postgresql:// URI (a hot standby) to answer from instead of --store.")
@click.option("--no-ingest", is_flag=True,
              help="Only answer: uploads, links and removals are queued in the PostgreSQL store for "
                   "`assistant worker`.")
@click.pass_context
def serve(ctx: click.Context, index_dir: str | None, host: str | None, port: int | None, store: str | None,
          store_readonly: str | None, no_ingest: bool) -> None:
    """Serve the web chat (/), the REST API (/api, docs at /docs) and the embeddable widget (/widget.js)."""
    from .web import run_server

    config = _config(ctx, host=host, port=port, store=store, store_readonly=store_readonly)
    if config.question_log is None:  # a server keeps its question log unless told not to (README: Insights)
        config = config.replace(question_log=True)
    if no_ingest and not config.store.startswith("postgresql"):
        raise click.ClickException("--no-ingest needs a PostgreSQL store (--store postgresql://…), which workers "
                                   "share; a folder store indexes in its server")
    _check_port(config.host, config.port)
    try:
        bot = Assistant.open(index_dir, config)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    run_server(bot, config, ingest=not no_ingest)


@main.command()
@click.option("--store", required=True, metavar="URI", help="The postgresql:// URI of the library.")
@click.option("--lease", default=60.0, show_default=True,
              help="Seconds another worker waits before taking the job of one that stopped answering.")
@click.pass_context
def worker(ctx: click.Context, store: str, lease: float) -> None:
    """Do the library changes queued by servers started with --no-ingest (uploads, links, removals), one job at
    a time, until Ctrl-C or SIGTERM (the job in hand is given back to the queue). Run any number, anywhere."""
    import logging
    import signal

    from .ingest.worker import Worker

    config = _config(ctx, store=store)
    if not config.store.startswith("postgresql"):
        raise click.ClickException("a worker needs a PostgreSQL store: --store postgresql://…")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    try:
        running = Worker(config.store, config, lease=lease)
    except (OSError, ValueError) as exc:  # OSError: PostgreSQL unreachable
        raise click.ClickException(str(exc)) from exc
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: running.stopping.set())
    click.echo(f"worker {running.name} on {redact(config.store)} (Ctrl-C to stop)", err=True)
    running.run()


@main.command()
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@_store_option
@click.pass_context
def mcp(ctx: click.Context, index_dir: str | None, store: str | None) -> None:
    """Serve the library to an AI agent over MCP on stdin/stdout (tools: search_library, ask_library,
    get_document, list_documents; read-only). Over HTTP, `assistant serve` has the same tools at /mcp."""
    from .web.mcp import run_stdio

    bot = _open(ctx, index_dir, store)
    run_stdio(bot, bot.config)


def _check_port(host: str, port: int) -> None:
    """Fail at once when the server could not listen: before the index and the models load (most of a
    minute), not after a banner saying it is serving."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            s.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} on {host} is already in use (another `assistant serve`?); stop "
                                       f"that server, or choose another port: --port {port + 1}") from exc
        hint = "; ports below 1024 need root: choose --port 7860" if exc.errno == errno.EACCES else ""
        raise click.ClickException(f"cannot listen on {host} port {port} ({exc.strerror or exc}){hint}") from exc


@main.command()
@click.option("--days", default=30, show_default=True, help="The period: the last this many days.")
@click.option("--sort", type=click.Choice(["largest", "newest"]), default="largest", show_default=True,
              help="Topic groups: the largest or the newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--csv", "csv_kind", type=click.Choice(["questions", "feedback"]), default=None,
              help="Print the period's questions (or feedback) as CSV instead.")
@click.option("--delete-all", is_flag=True, help="Delete the whole question log: questions, feedback, conversations.")
@click.option("--yes", is_flag=True, help="With --delete-all: do not ask first.")
@click.option("--index", "index_dir", default=None, help="Index folder (default: ./index).")
@_store_option
@click.option("--collection", default=None, metavar="ID", help="Only the questions asked in this collection.")
@click.pass_context
def insights(ctx: click.Context, days: int, sort: str, as_json: bool, csv_kind: str | None, delete_all: bool,
             yes: bool, index_dir: str | None, store: str | None, collection: str | None) -> None:
    """What the question log says (what `assistant serve` records): the questions the library could not
    answer and the answers marked 👎, grouped by topic with the closest documents; the documents cited most
    and never; questions per day."""
    from .log.insights import feedback_csv, questions_csv

    config = _config(ctx, store=store)
    if config.question_log is False:
        raise click.ClickException("the question log is off (question_log = false): nothing is recorded")
    try:
        bot = Assistant.open(index_dir, config.replace(question_log=True))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        _known(bot, collection)
        if delete_all:
            if yes or click.confirm("Delete every logged question, vote and conversation?"):
                bot.questions.delete_all()
                click.echo("The question log is empty.")
        elif csv_kind:
            for piece in (questions_csv if csv_kind == "questions" else feedback_csv)(bot.questions, days, collection):
                click.echo(piece, nl=False)
        elif as_json:
            click.echo(json.dumps(bot.insights(days, sort, collection), ensure_ascii=False, indent=2))
        else:
            _print_insights(bot.insights(days, sort, collection))
    finally:
        bot.close()


def _print_insights(report: dict) -> None:
    t = report["totals"]
    share = f" ({t['declined'] / t['questions']:.0%})" if t["questions"] else ""
    median = f"; median {t['median_seconds']} s" if t["median_seconds"] is not None else ""
    click.echo(f"Last {report['days']} days: {t['questions']} questions, {t['answered']} answered, "
               f"{t['declined']} declined{share}; 👍 {t['up']}, 👎 {t['down']}{median}")
    click.echo("\nQuestions it could not answer, and answers marked 👎, by topic:" if report["groups"] else "\nNo "
               "question was declined or marked 👎.")
    for g in report["groups"]:
        langs = ", ".join(f"{k} {v}" for k, v in g["languages"].items())
        click.echo(f"  {g['count']} questions ({g['declined']} declined, {g['down']} 👎; {langs}), "
                   f"{g['first'][:10]} – {g['last'][:10]}")
        for q in g["questions"]:
            click.echo(f"    - {q['question']}" + (f"  ×{q['asked']}" if q["asked"] > 1 else ""))
            for f in q["feedback"]:
                if f["reason"] or f["comment"]:
                    click.echo(f"        👎 {f['reason']}" + (f": {f['comment']}" if f["comment"] else ""))
        if g["closest"]:
            click.echo("    closest: " + ", ".join(f"{d['title']} ({d['similarity']:.2f})" for d in g["closest"]))
    if report["most_cited"]:
        click.echo("\nCited most:")
        for d in report["most_cited"]:
            click.echo(f"  {d['answers']:>5}  {d['title'] or d['doc_id']}")
    never = report["never_cited"]
    click.echo(f"\nNever cited: {never['total']} documents" + (
        ", e.g. " + ", ".join(d["title"] for d in never["documents"][:5]) if never["documents"] else ""))
    if report["log"]["failed"] or report["log"]["dropped"]:
        click.echo(f"Not recorded: {report['log']['failed']} failed, {report['log']['dropped']} dropped")


@main.command("copy-index")
@click.option("--index", "index_dir", default=None, help="Index folder to copy (default: ./index).")
@click.option("--store", required=True, metavar="URI", help="The postgresql:// URI to copy it into.")
@click.pass_context
def copy_index(ctx: click.Context, index_dir: str | None, store: str) -> None:
    """Copy an index folder into PostgreSQL, vectors included: nothing is embedded again.

    The database's library is replaced, in one transaction; servers keep answering from the old
    one until it commits.
    """
    source_config = _config(ctx)
    try:
        source = open_store(source_config.replace(store="sqlite"), index_dir, serving=True)
        target = open_store(_config(ctx, store=store))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        with _progress_bars() as progress:
            copied = copy_library(source, target, progress("documents", source.counts()["documents"]))
    except IndexBusy as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source.close()
        target.close()
    click.echo(f"{copied} documents copied from {source.location} into {target.location}")


if __name__ == "__main__":
    main()
