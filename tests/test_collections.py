"""Collections (issue #32) on both stores: scoped retrieval, memberships, migrations, uploads into one."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from assistant import Assistant, Config, index_library
from assistant.store.collections import CollectionError
from assistant.store.factory import copy_library, open_store

SHENZHEN = """# 深圳仓收费标准

深圳仓的仓储费是每立方米每天2元，入库费是每箱3元。
"""
NINGBO = """# 宁波仓收费标准

宁波仓的仓储费是每立方米每天5元，入库费是每箱6元。
"""
# A longer article of one collection: several passages, to check that its k best are found.
HANDBOOK = "\n\n".join(f"## 第{i}章\n\n深圳仓第{i}号库区的货架按周盘点，盘点时暂停该库区的出库，货物在盘点结束后当天发出。" * 3
                       for i in range(1, 15))
FILLERS = 90  # other warehouses, on the same topic: they crowd any search of the whole library


def write_warehouses(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shenzhen.md").write_text(SHENZHEN, encoding="utf-8")
    (folder / "ningbo.md").write_text(NINGBO, encoding="utf-8")
    (folder / "handbook.md").write_text("# 深圳仓操作手册\n\n" + HANDBOOK, encoding="utf-8")
    for i in range(FILLERS):
        (folder / f"filler-{i}.md").write_text(
            f"# 第{i}号海外仓收费\n\n第{i}号海外仓的仓储费是每立方米每天{i + 10}元，货架按月盘点。\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory):
    """(library folder, index folder) built once; tests copy the index."""
    library = write_warehouses(tmp_path_factory.mktemp("warehouses"))
    folder = tmp_path_factory.mktemp("wh-index")
    index_library([library], folder, Config())
    return library, folder


@pytest.fixture(params=["sqlite", "postgres"])
def bot(request, warehouses, tmp_path):
    """An assistant over a fresh copy of the warehouse library, in the folder store or in PostgreSQL."""
    library, folder = warehouses
    if request.param == "sqlite":
        copy = tmp_path / "index"
        shutil.copytree(folder, copy)
        assistant = Assistant.open(copy, Config())
    else:
        uri = request.getfixturevalue("db")
        source, target = open_store(Config(), folder, serving=True), open_store(Config(store=uri))
        copy_library(source, target)
        source.close(), target.close()
        assistant = Assistant.open(config=Config(store=uri))
    yield assistant
    assistant.close()


def doc_of(bot, name):
    return next(ids[0] for path, (*_, ids) in bot.index.store.files().items() if path.endswith(f"/{name}.md"))


def warehouses_library(bot):
    return json.loads(bot.index.store.get_meta("library"))[0]


def two_warehouses(bot):
    bot.collections.create("sz", "深圳仓")
    bot.collections.create("nb", "宁波仓")
    bot.collections.move([doc_of(bot, "shenzhen"), doc_of(bot, "handbook")], "default", "sz")
    bot.collections.move([doc_of(bot, "ningbo")], "default", "nb")


def test_an_index_opens_into_the_default_collection_and_without_others_answers_as_before(bot):
    (default,) = bot.collections.list()
    assert (default.id, default.documents) == ("default", FILLERS + 3)
    assert not bot.collections.configured()
    everywhere = bot.search("仓储费是多少", k=5)
    assert [h.chunk_id for h in bot.search("仓储费是多少", k=5, collection="default")] == [h.chunk_id for h in everywhere]


def test_two_collections_with_conflicting_fees_answer_each_from_its_own(bot):
    two_warehouses(bot)
    names = {c.id: c.name for c in bot.collections.list()}
    assert names == {"default": "Default", "sz": "深圳仓", "nb": "宁波仓"}
    shenzhen, ningbo = doc_of(bot, "shenzhen"), doc_of(bot, "ningbo")
    for collection, doc, fee, other in (("sz", shenzhen, "2元", "5元"), ("nb", ningbo, "5元", "2元")):
        answer = bot.ask("仓储费是每立方米每天多少钱？", collection=collection)
        assert not answer.declined, answer.text
        assert {c.doc_id for c in answer.citations} == {doc}
        assert fee in answer.text and other not in answer.text
    # What only another collection says is not answered from it.
    answer = bot.ask("货架多久盘点一次？", collection="nb")
    assert all(c.doc_id == ningbo for c in answer.citations + answer.related)
    with pytest.raises(CollectionError):
        bot.ask("仓储费是多少？", collection="nowhere")


def test_a_small_collection_in_a_larger_library_gets_its_k_best_passages(bot):
    two_warehouses(bot)
    store = bot.index.store
    query = bot.retriever.prepare("海外仓的仓储费是每立方米每天多少元？")
    members = {c.chunk_id for c in bot.search("盘点", k=50, collection="sz")}
    in_sz = {i for i, c in store.chunks(range(1, 10_000)).items() if c.doc_id in
             {doc_of(bot, "shenzhen"), doc_of(bot, "handbook")}}
    assert members <= in_sz and len(in_sz) >= 6
    # The whole library's nearest passages are the fillers' (post-filtering them would leave few or none) ...
    library_best = [i for i, _ in store.dense_search(query.vector, 5)]
    assert not set(library_best) & in_sz
    # ... and the collection's search returns its own exact k nearest.
    ids, vectors = store.chunk_vectors(sorted(in_sz))
    exact = [int(i) for i in ids[np.argsort(-(vectors @ query.vector))[:5]]]
    assert [i for i, _ in store.dense_search(query.vector, 5, "sz")] == exact
    keyword = store.keyword_search(query.searched, 5, collection="sz")
    assert len(keyword) == 5 and {i for i, _ in keyword} <= in_sz
    _, docs = bot.documents(collection="sz")
    assert {d.file for d in docs} == {"shenzhen.md", "handbook.md"}


def test_removing_a_document_from_one_collection_leaves_it_in_the_other(bot):
    two_warehouses(bot)
    shenzhen = doc_of(bot, "shenzhen")
    bot.collections.add([shenzhen], "nb")
    assert bot.collections.of(shenzhen) == ["nb", "sz"]
    assert bot.remove_document(shenzhen, collection="nb") == []
    assert bot.collections.of(shenzhen) == ["sz"] and bot.document(shenzhen) is not None
    assert all(h.doc_id != shenzhen for h in bot.search("仓储费", k=10, collection="nb"))
    assert any(h.doc_id == shenzhen for h in bot.search("仓储费", k=10, collection="sz"))
    with pytest.raises(CollectionError) as refused:
        bot.collections.delete("sz")
    assert refused.value.status == 409
    with pytest.raises(CollectionError):
        bot.collections.delete("default")
    bot.collections.create("empty", "空的")
    bot.collections.rename("empty", "仍然是空的")
    assert bot.collections.get("empty").name == "仍然是空的"
    bot.collections.delete("empty")
    assert bot.collections.get("empty") is None
    for bad in ("", "Upper", "a b", "x" * 33, "-lead"):
        with pytest.raises(CollectionError):
            bot.collections.create(bad, "name")


def test_memberships_survive_reindexing_a_changed_file(warehouses, tmp_path):
    library = tmp_path / "lib"
    shutil.copytree(warehouses[0], library)
    folder = tmp_path / "index"
    shutil.copytree(warehouses[1], folder)
    bot = Assistant.open(folder, Config())
    try:
        bot.collections.create("sz", "深圳仓")
        bot.collections.move([doc_of(bot, "handbook")], "default", "sz")
        (library / "shenzhen.md").write_text(SHENZHEN + "\n周末不入库。\n", encoding="utf-8")  # a new document id
        index_library([library], folder, Config())
        assert bot.collections.of(doc_of(bot, "handbook")) == ["sz"]
        assert bot.collections.of(doc_of(bot, "shenzhen")) == ["default"]
        assert bot.collections.get("sz").documents == 1
    finally:
        bot.close()


def test_an_index_from_before_collections_migrates_into_the_default(warehouses, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(warehouses[1], folder)
    db = sqlite3.connect(folder / "library.sqlite")
    db.executescript("DROP TABLE collection_routes; DROP TABLE collection_docs; DROP TABLE collections; "
                     "DELETE FROM _migrations WHERE name = 'm005_collections';")
    db.close()
    bot = Assistant.open(folder, Config())
    try:
        assert [(c.id, c.documents) for c in bot.collections.list()] == [("default", FILLERS + 3)]
    finally:
        bot.close()


def test_uploads_and_links_go_into_the_chosen_collection_only(bot, tmp_path):
    if bot.config.store != "sqlite":
        pytest.skip("uploads go through the library folder (the folder store)")
    library = tmp_path / "lib"
    shutil.copytree(warehouses_library(bot), library)
    bot.index.store.set_meta("library", json.dumps([str(library)]))  # uploads go to this copy
    two_warehouses(bot)
    outcome, = bot.add_files([("qingdao.md", "# 青岛仓收费标准\n\n青岛仓的仓储费是每立方米每天8元。".encode())],
                             collection="nb")
    assert outcome.status == "added"
    (doc,) = outcome.doc_ids
    assert bot.collections.of(doc) == ["nb"]
    # The same content again, into another collection: it is in both.
    again, = bot.add_files([("qingdao-copy.md", "# 青岛仓收费标准\n\n青岛仓的仓储费是每立方米每天8元。".encode())],
                           collection="sz")
    assert again.status == "unchanged" and bot.collections.of(doc) == ["nb", "sz"]


def test_postgres_scopes_the_query_pgvector_uses_and_keeps_its_hnsw_index(warehouses, db, monkeypatch):
    import psycopg
    from pgvector.psycopg import register_vector

    from assistant.store import postgres as pgstore

    monkeypatch.setattr(pgstore, "HNSW_MIN_CHUNKS", 20)  # the warehouse library then gets an HNSW index
    source, target = open_store(Config(), warehouses[1], serving=True), open_store(Config(store=db))
    copy_library(source, target)
    source.close(), target.close()
    bot = Assistant.open(config=Config(store=db))
    try:
        two_warehouses(bot)
        store = bot.index.store
        seen = []
        rows = store._rows
        monkeypatch.setattr(store, "_rows", lambda sql, args=(): seen.append((sql, args)) or rows(sql, args))
        query = bot.retriever.prepare("海外仓的仓储费是每立方米每天多少元？")

        explain = psycopg.connect(db, autocommit=True)
        register_vector(explain)
        # At ~100 rows a scan and a sort cost less than any index: what matters is that the index fits the query.
        explain.execute("SET enable_seqscan = off")
        explain.execute("SET enable_sort = off")

        def plan(collection):
            found = store.dense_search(query.vector, 5, collection)
            sql, args = seen[-1]
            return found, "\n".join(r[0] for r in explain.execute("EXPLAIN " + sql, args).fetchall())

        found, large = plan("default")  # ~90 chunks: past the (lowered) threshold, the HNSW index with a WHERE
        assert "chunks_hnsw" in large and "collection_docs" in large, large
        members = {i for i, c in store.chunks([i for i, _ in found]).items()}
        assert len(found) == 5 and members
        found, small = plan("sz")  # a few chunks: scanned exactly
        assert "chunks_hnsw" not in small, small
        ids, vectors = store.chunk_vectors(None)
        in_sz = {i for i, c in store.chunks(ids.tolist()).items()
                 if c.doc_id in {doc_of(bot, "shenzhen"), doc_of(bot, "handbook")}}
        keep = np.isin(ids, sorted(in_sz))
        exact = [int(i) for i in ids[keep][np.argsort(-(vectors[keep] @ query.vector))[:5]]]
        assert [i for i, _ in found] == exact
        explain.close()
    finally:
        bot.close()


def test_the_cli_mirrors_the_python_api(warehouses, tmp_path):
    from click.testing import CliRunner

    from assistant.cli import main
    from assistant.store.collections import token_hash

    folder = tmp_path / "index"
    shutil.copytree(warehouses[1], folder)
    run = CliRunner().invoke

    def ok(*args):
        result = run(main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    bot = Assistant.open(folder, Config())
    ningbo, shenzhen = doc_of(bot, "ningbo"), doc_of(bot, "shenzhen")
    bot.close()
    ok("collections", "--index", str(folder), "create", "nb", "宁波仓")
    ok("collections", "--index", str(folder), "add", "nb", ningbo, "--from", "default")
    listed = ok("collections", "--index", str(folder))
    assert "nb" in listed and "宁波仓" in listed and f"{FILLERS + 2:>6} documents" in listed
    assert "5元" in ok("ask", "仓储费是每立方米每天多少钱？", "--index", str(folder), "--collection", "nb")
    assert ningbo in ok("documents", "--index", str(folder), "--collection", "nb")
    unknown = run(main, ["search", "仓储费", "--index", str(folder), "--collection", "nowhere"])
    assert unknown.exit_code != 0 and "nowhere" in unknown.output
    ok("collections", "--index", str(folder), "add", "nb", shenzhen)
    assert "still in default" in ok("remove", shenzhen, "--index", str(folder), "--collection", "nb")
    refused = run(main, ["collections", "--index", str(folder), "delete", "nb"])
    assert refused.exit_code != 0 and "holds documents" in refused.output
    made = ok("collections", "hash-token")
    token = made.split("token:")[1].split()[0]
    assert made.split("sha256:")[1].strip() == token_hash(token)
