"""`train-tokenizer --layout glm` (spec mGLM.md A2.2): pieces first, GLM's command tokens after,
an HF folder stock `transformers` loads; the XLM-R layout is unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

from data_prep.tokenizer import GLM_TOKENS, load_tokenizer, tokenizer_info, train_tokenizer
from paths import SHARED_DATA

TEXT = SHARED_DATA / "parallel" / "tatoeba.deu-eng.eng"


@pytest.fixture(scope="module")
def glm_tok(tmp_path_factory):
    return train_tokenizer([TEXT], 400, tmp_path_factory.mktemp("glmtok"), layout="glm")


def test_command_token_ids_and_padding(glm_tok):
    tok = load_tokenizer(glm_tok)
    info = tokenizer_info(tok)
    n = info["eos_id"]
    assert info["layout"] == "glm" and info["vocab_size"] == n + 11 == len(tok)
    assert [tok.convert_tokens_to_ids(t) for t in GLM_TOKENS] == list(range(n, n + 11))
    assert (info["sep_id"], info["cls_id"], info["mask_id"]) == (n + 1, n + 2, n + 3)
    assert (info["sop_id"], info["eop_id"], info["smask_id"], info["gmask_id"],
            info["dblock_id"]) == (n + 6, n + 7, n + 8, n + 9, n + 10)
    assert info["pad_id"] == n and info["padded_vocab_size"] % 128 == 0
    assert info["padded_vocab_size"] - 128 < info["vocab_size"] <= info["padded_vocab_size"]
    ids = tok("Tom is [MASK] today.", add_special_tokens=False).input_ids
    assert ids.count(info["mask_id"]) == 1 and max(i for i in ids if i != info["mask_id"]) < n
    plain = tok("Tom is here.", add_special_tokens=False).input_ids
    assert tok.decode(plain) == "Tom is here."


def test_stock_transformers_loads_it(glm_tok):
    code = ("import sys; from transformers import AutoTokenizer; "
            "t = AutoTokenizer.from_pretrained(sys.argv[1]); "
            "print(t.convert_tokens_to_ids('[gMASK]'), len(t))")
    out = subprocess.run([sys.executable, "-c", code, str(glm_tok)], capture_output=True,
                         text=True, check=True).stdout.split()
    info = tokenizer_info(load_tokenizer(glm_tok))
    assert [int(x) for x in out] == [info["gmask_id"], info["vocab_size"]]


def test_deterministic_and_xlmr_unchanged(glm_tok, tmp_path):
    again = train_tokenizer([TEXT], 400, tmp_path / "again", layout="glm")
    assert (again / "tokenizer.json").read_bytes() == (glm_tok / "tokenizer.json").read_bytes()
    xlmr = tokenizer_info(load_tokenizer(train_tokenizer([TEXT], 400, tmp_path / "x")))
    assert "layout" not in xlmr and xlmr["cls_id"] == 0 and xlmr["pad_id"] == 1
    with pytest.raises(ValueError, match="--layout"):
        train_tokenizer([TEXT], 400, tmp_path / "bad", layout="bert")
