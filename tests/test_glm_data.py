"""mGLM data (`pretrain.glm_data`): windows pack `[CLS] d [eos]` streams with nothing lost or
repeated, languages are blended by text bytes (α), resume at any sample count, ranks split the
same global order, and bad folders fail before any worker."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from dist_utils import ROOT
from pretrain.config import ConfigError, load_config

TINY_MGLM = ROOT / "configs" / "tiny_mglm.yaml"


def _cfg(data, tmp_path, *sets):
    return load_config(TINY_MGLM, [f"data.paths=[{data / 'corpus'}]", f"run_dir={tmp_path}",
                                   "data.num_workers=0", *sets])


def test_manifest_counts_text_bytes(tiny_glm_data):
    manifest = json.loads((tiny_glm_data / "corpus" / "en" / "manifest.json").read_text())
    text = (tiny_glm_data / "en.txt").read_text(encoding="utf-8")
    docs = [d for d in text.split("\n\n") if d.strip()]
    assert manifest["text_bytes"] == sum(len(d.strip().encode("utf-8")) for d in docs)
    assert manifest["tokenizer"]["layout"] == "glm" and manifest["tokenizer"]["sentence_end_ids"]


def test_windows_cover_every_stream_token_once(tiny_glm_data, tmp_path):
    from data_prep.format import CorpusDataset
    from pretrain.glm_data import GlmSource, glm_data_info

    cfg = _cfg(tiny_glm_data, tmp_path)
    info = glm_data_info(cfg)
    tok = info.tokenizer
    cls, eos, length = tok["cls_id"], tok["eos_id"], cfg.data.max_seq_len
    source = GlmSource(info)
    for lang, folder in enumerate(info.folders):
        indexed = CorpusDataset(folder).indexed
        packing = info.train[lang]
        stream = np.concatenate([np.concatenate(
            [[cls], *[indexed[s] for s in range(indexed.document_indices[d],
                                                indexed.document_indices[d + 1])], [eos]])
            for d in packing.order])
        rebuilt = []
        for k in range(len(packing)):
            _, window = source[(0, lang, k, k)]
            assert window[0] == cls and len(window) <= length
            starts_with_document = packing.pieces(k)[0][1] == 0  # else a [CLS] was added
            rebuilt.append(window if starts_with_document else window[1:])
        assert np.array_equal(np.concatenate(rebuilt), stream)
        held = set(info.held_out[lang].order.tolist())
        assert len(held) == cfg.mglm.eval_documents and not held & set(packing.order.tolist())
        assert len(held) + len(packing.order) == len(indexed.document_indices) - 1


def test_blend_by_bytes_resume_and_ranks(tiny_glm_data, tmp_path):
    from pretrain.data import blend_weights
    from pretrain.glm_data import glm_data_info, train_batches, train_sampler

    cfg = _cfg(tiny_glm_data, tmp_path, "data.alpha=0.3")
    info = glm_data_info(cfg)
    sampler = train_sampler(cfg, info)
    expected = blend_weights(info.text_bytes, 0.3)
    assert sampler.weights == pytest.approx(expected)
    assert blend_weights(info.train_windows, 0.3) != pytest.approx(expected)  # bytes, not windows
    n = sampler.epoch_length * 3
    counts = Counter(lang for lang, _ in sampler.take(0, n))
    for lang_id, lang in enumerate(info.languages):
        assert counts[lang_id] / n == pytest.approx(expected[lang], abs=0.01)

    def batches(rank, world, consumed, count):
        gen = train_batches(cfg, rank, world, consumed, info)
        out = [next(gen) for _ in range(count)]
        gen.close()
        return out

    straight = batches(0, 1, 0, 6)
    resumed = batches(0, 1, 8, 4)  # 8 samples = 2 micro-batches of 4
    for a, b in zip(straight[2:], resumed):
        assert all(torch.equal(a[key], b[key]) for key in a)
    rank0, rank1 = batches(0, 2, 0, 3), batches(1, 2, 0, 3)
    for k in range(3):  # rank r's k-th micro-batch = global micro-batch 2k + r
        assert torch.equal(rank0[k]["input_ids"], straight[2 * k]["input_ids"])
        assert torch.equal(rank1[k]["input_ids"], straight[2 * k + 1]["input_ids"])


def test_eval_batches_are_fixed_and_held_out(tiny_glm_data, tmp_path):
    from pretrain.glm_data import eval_batches, glm_data_info

    cfg = _cfg(tiny_glm_data, tmp_path)
    info = glm_data_info(cfg)
    first, again = list(eval_batches(cfg, 0, 1, info)), list(eval_batches(cfg, 0, 1, info))
    assert first and all(torch.equal(a[k], b[k]) for a, b in zip(first, again) for k in a)
    assert sum(int(b["loss_mask"].sum()) for b in first) > 0
    r0, r1 = list(eval_batches(cfg, 0, 2, info)), list(eval_batches(cfg, 1, 2, info))
    assert len(r0) == len(r1)


def test_bad_folders_fail_before_any_worker(tiny_glm_data, tiny_veco_data, tmp_path):
    from pretrain.config import validate

    def check(*sets):
        validate(_cfg(tiny_glm_data, tmp_path, *sets), 1)

    check()
    old = tmp_path / "old"
    shutil.copytree(tiny_glm_data / "corpus" / "en", old)
    shutil.copytree(tiny_glm_data / "corpus" / "en", tmp_path / "dup")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["text_bytes"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    for sets, message in (
            ([f"data.paths=[{old}]"], "has no text_bytes"),
            ([f"data.paths=[{tiny_veco_data / 'corpus' / 'en'}]"], "not a GLM tokenizer"),
            ([f"data.paths=[{tiny_glm_data / 'corpus' / 'en'},{tmp_path / 'dup'}]"], "both 'en'"),
            (["mglm.eval_documents=40"], "not more than mglm.eval_documents=40"),
            (["mglm.bert_prob=0.8"], "> 1"),
            (["mglm.attention=fast"], "mglm.attention must be one of"),
            (["data.max_seq_len=65"], "max_position_embeddings=65 <= data.max_seq_len=65")):
        with pytest.raises(ConfigError, match=message):
            check(*sets)


def test_collator_settings_come_from_the_run_config(tiny_glm_data, tmp_path):
    """blank_config copies every cfg.mglm field the collator has; BlankConfig's own defaults (for
    code that builds a collator without a run config) are the same mGLM-Large values."""
    from dataclasses import asdict, fields

    from pretrain.config import MglmConfig
    from pretrain.glm_blank import BlankConfig
    from pretrain.glm_data import blank_config

    cfg = _cfg(tiny_glm_data, tmp_path, "mglm.bert_prob=0.4", "mglm.short_seq_prob=0.5")
    blank = blank_config(cfg)
    assert (blank.bert_prob, blank.short_seq_prob, blank.max_seq_len) == (0.4, 0.5, 64)
    shared = {f.name for f in fields(BlankConfig)} & set(MglmConfig.__dataclass_fields__)
    assert len(shared) == 10
    defaults = MglmConfig()
    assert {n: getattr(defaults, n) for n in shared} == \
        {n: v for n, v in asdict(BlankConfig()).items() if n in shared}
