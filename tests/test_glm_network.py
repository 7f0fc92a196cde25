"""The GLM network (spec mGLM.md A2.1, A1.6): the sep attention in all implementations, the
KV cache against one full pass, tied output weights and the mGLM-Large parameter count."""

from __future__ import annotations

import pytest
import torch

from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling


def tiny(attention: str = "sdpa") -> GlmForBlankInfilling:
    torch.manual_seed(0)
    return GlmForBlankInfilling(GlmConfig(vocab_size=64, hidden_size=32, num_layers=2,
                                          num_heads=2, intermediate_size=64,
                                          max_position_embeddings=32,
                                          attention=attention)).eval()


def batch(b=2, s=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (b, s), generator=g)
    pos = torch.stack([torch.arange(s).repeat(b, 1), torch.zeros(b, s, dtype=torch.long)], 1)
    return ids, pos, torch.tensor([5, 8])[:b]


def test_sep_attention_semantics_and_implementations():
    ids, pos, sep = batch()
    model = tiny()
    with torch.no_grad():
        ref = model(ids, pos, sep=sep).logits
        for kind in ("dense", "flex"):
            model.config.attention = kind
            assert torch.allclose(model(ids, pos, sep=sep).logits, ref, atol=1e-5), kind
        model.config.attention = "sdpa"
        changed = ids.clone()
        changed[0, 9] = (changed[0, 9] + 1) % 64  # a Part-B token of sample 0 (sep 5)
        out = model(changed, pos, sep=sep).logits
        assert torch.allclose(out[0, :9], ref[0, :9], atol=1e-6)  # Part A and earlier Part B
        assert not torch.allclose(out[0, 9], ref[0, 9])
        changed = ids.clone()
        changed[0, 4] = (changed[0, 4] + 1) % 64  # a Part-A token: every row sees it
        out = model(changed, pos, sep=sep).logits
        assert not torch.allclose(out[0, 0], ref[0, 0]) and not torch.allclose(out[0, 11], ref[0, 11])


def test_kv_cache_matches_one_pass():
    ids, pos, _ = batch(b=1, s=10)
    model = tiny()
    ctx = 6
    with torch.no_grad():
        full = model(ids, pos, sep=torch.tensor([ctx])).logits
        out = model(ids[:, :ctx], pos[:, :, :ctx], sep=torch.tensor([ctx]), use_cache=True)
        past, steps = out.past_key_values, [out.logits[:, -1]]
        for t in range(ctx, 10):
            out = model(ids[:, t:t + 1], pos[:, :, t:t + 1], past_key_values=past,
                        use_cache=True)
            past = out.past_key_values
            steps.append(out.logits[:, -1])
    assert torch.allclose(torch.stack(steps[1:], 1), full[:, ctx:], atol=1e-5)


def test_tied_output_and_large_parameter_count():
    model = tiny()
    ids, pos, sep = batch()
    logits = model(ids, pos, sep=sep).logits
    assert logits.shape == (2, 12, 64) and logits.dtype == torch.float32
    params = dict(model.named_parameters())
    assert not any("lm_head" in n for n in params)  # output = word embeddings (tied)
    with torch.device("meta"):
        large = GlmForBlankInfilling(GlmConfig(vocab_size=250112, hidden_size=1536,
                                               num_layers=24, num_heads=16,
                                               intermediate_size=6144,
                                               max_position_embeddings=1025))
    n = sum(p.numel() for p in large.parameters())
    assert 1.05e9 < n < 1.09e9, n  # A2.3: ≈ 1.07B


def test_training_loss_is_the_part_b_token_mean():
    import torch.nn.functional as F

    from pretrain.glm_model import GlmPretrainingModel, param_groups

    model = GlmPretrainingModel(tiny())
    ids, pos, sep = batch()
    labels = torch.randint(0, 64, ids.shape, generator=torch.Generator().manual_seed(3))
    loss_mask = (torch.arange(12)[None] >= sep[:, None]).float()
    mode = torch.tensor([0, 2])
    loss, parts = model(ids, pos, labels, loss_mask, sep, mode=mode, task="eval")
    logits = model.net(ids, pos, sep=sep).logits
    ce = F.cross_entropy(logits[loss_mask > 0], labels[loss_mask > 0])
    assert torch.allclose(loss, ce, atol=1e-6)
    stats = parts["stats"]
    assert stats[:, 1].tolist() == [7.0, 0.0, 4.0]  # targets per mode: 12-5 and 12-8
    assert torch.isclose(stats[:, 0].sum() / stats[:, 1].sum(), loss.double(), atol=1e-6)
    assert parts["label_counts"].sum() == 11
    correct = (logits.argmax(-1) == labels)[loss_mask > 0].sum()  # Part-B-only projection
    assert stats[:, 2].sum() == float(correct)
    groups = param_groups(model, 0.01)
    no_decay = {id(p) for p in groups[1]["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in no_decay) == (p.ndim < 2 or "layernorm" in name), name
