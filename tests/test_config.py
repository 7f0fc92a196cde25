"""Run config: recipes, overrides, round trips, DeepSpeed config, and bad configs that must fail
before any worker starts with a `ConfigError` that says what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pretrain.config import (
    ConfigError, RunConfig, config_from_dict, config_to_dict, deepspeed_config, load_config,
    save_config, validate,
)

from conftest import PROJECT_ROOT, TOKENIZER, random_examples

CONFIGS = PROJECT_ROOT / "configs"


def test_recipes_hold_paper_settings():
    large = load_config(CONFIGS / "mpmr_large.yaml")
    assert large.model.init_from == "xlm-roberta-large"
    assert large.optim.lr == 1e-5 and large.optim.clip_grad == 1.0
    assert large.train.global_batch_size == 80  # mtrain-large.sh: 4 GPUs x 20
    assert (large.data.max_seq_len, large.data.max_query_tokens) == (512, 128)
    assert (large.train.precision, large.train.zero_stage) == ("bf16", 2)
    assert large.model.extractor_size == 1024 and large.model.dropout == 0.1
    base = load_config(CONFIGS / "mpmr_base.yaml")
    assert base.model.init_from == "xlm-roberta-base" and base.train.global_batch_size == 256  # mtrain.sh: 4 x 64
    for recipe, steps in ((large, 100_000), (base, 250_000)):  # paper §A.1
        # PMR mPMR/train.py: transformers AdamW (betas 0.9, 0.999), eps 1e-8, no decay, 6 %
        # linear warmup then linear decay to 0; natural language mix (wiki_mix_fast.py);
        # 1000 held-out entities per language (--PMR_test); all cells weigh the same
        assert recipe.optim.betas == (0.9, 0.999) and recipe.optim.eps == 1e-8
        assert recipe.optim.weight_decay == 0.0 and recipe.optim.warmup_ratio == 0.06
        assert recipe.optim.min_lr == 0.0 and recipe.train.train_steps == steps
        assert recipe.data.alpha == 1.0 and recipe.data.eval_entities == 1000
        assert recipe.model.relevance_weight == 1.0 and recipe.train.seed == 42
        ds = deepspeed_config(recipe, 8)
        assert ds["scheduler"]["type"] == "WarmupDecayLR"
        assert ds["scheduler"]["params"]["warmup_num_steps"] == int(0.06 * steps)
    tiny = load_config(CONFIGS / "tiny_mpmr.yaml")
    assert (tiny.model.hidden_size, tiny.model.num_layers, tiny.model.num_heads) == (32, 2, 2)
    assert (tiny.data.max_seq_len, tiny.train.micro_batch_size, tiny.train.global_batch_size) == \
        (128, 4, 8)
    assert (tiny.train.precision, tiny.train.zero_stage, tiny.train.train_steps) == ("fp32", 2, 20)
    assert tiny.data.paths == ["demo_out/mrc"]


def test_overrides_parse_typed_values():
    cfg = load_config(CONFIGS / "tiny_mpmr.yaml", [
        "optim.lr=3e-4", "train.zero_stage=3", "data.paths=[a, b/c]", "model.fused_span_loss=true",
        "optim.betas=[0.8, 0.9]", "run_dir=/tmp/x"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.train.zero_stage == 3 and cfg.model.fused_span_loss is True
    assert cfg.data.paths == ["a", "b/c"] and cfg.optim.betas == (0.8, 0.9)
    assert cfg.run_dir == "/tmp/x"


def test_save_load_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "mpmr_large.yaml", ["train.train_steps=7"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    json.dumps(config_to_dict(cfg))  # JSON-able for checkpoints


@pytest.mark.parametrize("overrides, needle", [
    (["model.hiddn_size=3"], "unknown key 'model.hiddn_size'"),
    (["trian.train_steps=3"], "unknown key 'trian'"),
    (["train.global_batch_size=lots"], "'train.global_batch_size'"),
    (["train.train_steps=2.5"], "'train.train_steps'"),
    (["model.init_from=3"], "'model.init_from'"),
    (["data.paths=oops"], "'data.paths'"),
    (["train.precision.x=1"], "train.precision is not a section"),
    (["nonsense"], "expected KEY.PATH=VALUE"),
])
def test_bad_keys_and_types(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS / "tiny_mpmr.yaml", overrides)
    assert needle in str(err.value)


def test_unknown_nested_key_in_yaml(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  init_from: tiny\n  extractor:\n    size: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'model.extractor'"):
        load_config(recipe)


def test_valid_tiny_config_passes(tiny_config):
    for world_size, accumulation in ((1, 2), (2, 1)):  # global 8 = micro 4 x ranks x accumulation
        validate(tiny_config, world_size)
        ds = deepspeed_config(tiny_config, world_size)
        assert ds["gradient_accumulation_steps"] == accumulation
        assert ds["train_batch_size"] == 8 and ds["train_micro_batch_size_per_gpu"] == 4


def test_batch_must_divide(tiny_config):
    with pytest.raises(ConfigError, match="not divisible by micro_batch_size"):
        validate(tiny_config, 3)
    cfg = load_config(None, ["train.global_batch_size=10", "train.micro_batch_size=4",
                             f"data.paths={tiny_config.data.paths}"])
    with pytest.raises(ConfigError, match="global_batch_size=10"):
        validate(cfg, 1)


def _with(cfg: RunConfig, *overrides: str) -> RunConfig:
    return config_from_dict(_apply(config_to_dict(cfg), overrides))


def _apply(tree: dict, overrides) -> dict:
    from pretrain.config import apply_override

    for assignment in overrides:
        apply_override(tree, assignment)
    return tree


def test_missing_data_folder(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        validate(_with(tiny_config, f"data.paths=[{tmp_path / 'nowhere'}]"), 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no manifest.json"):
        validate(_with(tiny_config, f"data.paths=[{tmp_path / 'empty'}]"), 1)


def test_interrupted_build_is_named(tiny_mrc_data, tiny_config, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_mrc_data / "en", root / "en")
    (root / "fr" / ".work" / "shards").mkdir(parents=True)  # a build that never merged
    with pytest.raises(ConfigError, match="interrupted"):
        validate(_with(tiny_config, f"data.paths=[{root}]"), 1)
    with pytest.raises(ConfigError, match="interrupted"):
        validate(_with(tiny_config, f"data.paths=[{root / 'fr'}]"), 1)


def test_mixed_tokenizers_rejected(tiny_mrc_data, tiny_config, make_mrc_folder, tmp_path):
    other = make_mrc_folder(tmp_path / "fr", "fr", random_examples(np.random.default_rng(5), 30),
                            tokenizer={**TOKENIZER, "fingerprint": "another-tokenizer"})
    cfg = _with(tiny_config, f"data.paths=[{tiny_mrc_data / 'en'}, {other}]")
    with pytest.raises(ConfigError, match="different tokenizer"):
        validate(cfg, 1)


def test_duplicate_language_rejected(tiny_mrc_data, tiny_config, make_mrc_folder, tmp_path):
    again = make_mrc_folder(tmp_path / "en2", "en", random_examples(np.random.default_rng(6), 30))
    with pytest.raises(ConfigError, match=r"\['en'\] appear in more than one folder"):
        validate(_with(tiny_config, f"data.paths=[{tiny_mrc_data / 'en'}, {again}]"), 1)


def test_sequences_longer_than_max_seq_len(tiny_config, make_mrc_folder, tmp_path):
    folder = make_mrc_folder(tmp_path / "long", "en",
                             random_examples(np.random.default_rng(7), 40, max_context=60),
                             params={"seed": 0})
    with pytest.raises(ConfigError, match="sequences of up to .* > data.max_seq_len=32"):
        validate(_with(tiny_config, f"data.paths=[{folder}]", "data.max_seq_len=32"), 1)
    validate(_with(tiny_config, f"data.paths=[{folder}]", "data.max_seq_len=128"), 1)
    # the query limit is checked against the manifest's build parameters
    with pytest.raises(ConfigError, match="built with max_query_tokens=16"):
        validate(_with(tiny_config, "data.max_query_tokens=8"), 1)


def test_model_checks(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="not divisible by model.num_heads"):
        validate(_with(tiny_config, "model.num_heads=5"), 1)
    with pytest.raises(ConfigError, match="max_position_embeddings=100 is too small"):
        validate(_with(tiny_config, "model.max_position_embeddings=100"), 1)
    (tmp_path / "hf").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        validate(_with(tiny_config, f"model.init_from={tmp_path / 'hf'}"), 1)
    (tmp_path / "hf" / "config.json").write_text(json.dumps(
        {"vocab_size": 10, "max_position_embeddings": 514}))
    with pytest.raises(ConfigError, match="vocab_size 10"):
        validate(_with(tiny_config, f"model.init_from={tmp_path / 'hf'}"), 1)


def test_other_value_checks(tiny_config):
    cases = [("train.precision=fp8", "train.precision"), ("train.zero_stage=4", "zero_stage"),
             ("optim.warmup_steps=30", "longer than train.train_steps"),
             ("data.eval_entities=1000", "not more than data.eval_entities"),
             ("data.alpha=-1", "data.alpha")]
    for override, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            validate(_with(tiny_config, override), 1)


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_deepspeed_config_per_stage(stage):
    cfg = load_config(CONFIGS / "tiny_mpmr.yaml", [f"train.zero_stage={stage}",
                                                   "train.global_batch_size=16"])
    ds = deepspeed_config(cfg, 2)
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["train_batch_size"] == 16 and ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["gradient_accumulation_steps"] == 2 and ds["gradient_clipping"] == 1.0
    assert ds["bf16"] == {"enabled": False} and ds["fp16"] == {"enabled": False}
    params = ds["scheduler"]["params"]
    assert params["warmup_max_lr"] == cfg.optim.lr and params["total_num_steps"] == 20
    assert params["warmup_num_steps"] == 2 and params["warmup_type"] == "linear"
    assert "optimizer" not in ds
    assert "load_universal" not in ds.get("checkpoint", {})
    universal = deepspeed_config(cfg, 2, load_universal=True)
    assert universal["checkpoint"]["load_universal"] is True


def test_deepspeed_precision_blocks():
    fp16 = deepspeed_config(load_config(CONFIGS / "tiny_mpmr.yaml", ["train.precision=fp16"]), 1)
    assert fp16["fp16"]["enabled"] and fp16["fp16"]["loss_scale"] == 0  # dynamic loss scaling
    assert fp16["bf16"] == {"enabled": False}
    bf16 = deepspeed_config(load_config(CONFIGS / "tiny_mpmr.yaml", ["train.precision=bf16"]), 1)
    assert bf16["bf16"] == {"enabled": True} and bf16["fp16"] == {"enabled": False}


def test_deepspeed_template_contradictions(tmp_path):
    template = tmp_path / "ds.json"
    template.write_text(json.dumps({"train_batch_size": 999, "zero_optimization": {"stage": 2}}))
    cfg = load_config(CONFIGS / "tiny_mpmr.yaml", [f"train.deepspeed_config={template}"])
    with pytest.raises(ConfigError, match="'train_batch_size'=999"):
        deepspeed_config(cfg, 1)
    template.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match="zero_optimization.stage"):
        deepspeed_config(cfg, 1)
    template.write_text(json.dumps({"optimizer": {"type": "Adam"}}))
    with pytest.raises(ConfigError, match="defines 'optimizer'"):
        deepspeed_config(cfg, 1)
    template.write_text(json.dumps({"train_batch_size": 8, "zero_optimization": {"stage": 2,
                                                                                 "overlap_comm": False}}))
    ds = deepspeed_config(cfg, 1)  # agreeing values are fine; template extras survive
    assert ds["zero_optimization"]["overlap_comm"] is False
    cfg = load_config(CONFIGS / "tiny_mpmr.yaml", ["train.deepspeed_config=missing.json"])
    with pytest.raises(ConfigError, match="missing.json not found"):
        deepspeed_config(cfg, 1)


def test_templates_are_valid_json():
    for stage in range(4):
        data = json.loads((CONFIGS / "ds" / f"zero{stage}.json").read_text())
        assert data["zero_optimization"]["stage"] == stage
        assert Path(CONFIGS / "ds" / f"zero{stage}.json").is_file()


def test_veco_recipes_hold_table_8():
    """configs/veco_{large,small}.yaml: the paper's Table 8 (S2:466-472) and S2:140-146."""
    large = load_config(CONFIGS / "veco_large.yaml")
    small = load_config(CONFIGS / "veco_small.yaml")
    for recipe in (large, small):
        assert recipe.objective == "veco" and recipe.data.alpha == 0.5
        assert (recipe.veco.mono_mask_prob, recipe.veco.bilingual_mask_prob) == (0.15, 0.25)
        assert (recipe.data.max_seq_len, recipe.veco.bilingual_max_len) == (512, 128)
        assert recipe.train.global_batch_size * recipe.veco.bilingual_batch_ratio == 4096
        assert recipe.train.global_batch_size == 1024 and recipe.train.train_steps == 240_000
        assert recipe.optim.warmup_steps == 12_000 and recipe.optim.min_lr == 0.0
        assert (recipe.optim.eps, recipe.optim.weight_decay) == (1e-6, 0.01)
        assert recipe.veco.schedule == "alternate" and recipe.veco.loss == "ca_mlm"
        assert recipe.veco.tlm and recipe.veco.seq2seq_decoder_layers == 6
        ds = deepspeed_config(recipe, 64)
        assert ds["scheduler"]["type"] == "WarmupDecayLR"
    assert large.model.init_from == "xlm-roberta-large" and large.optim.lr == 2e-4
    assert large.optim.betas == (0.9, 0.98) and large.veco.freeze_steps > 0
    assert (small.model.num_layers, small.model.hidden_size, small.model.num_heads,
            small.model.intermediate_size) == (6, 768, 12, 3072)
    assert small.optim.lr == 3e-4 and small.optim.betas == (0.9, 0.999)
    assert small.model.init_from == "tiny" and small.veco.freeze_steps == 0  # from scratch


def test_decay_steps_reaches_min_lr_there_and_holds_it():
    """optim.decay_steps → WarmupDecayLR's total_num_steps (0 = train.train_steps); driven
    for the whole run, the lr warms up, decays to min_lr at decay_steps and stays there."""
    import torch
    from deepspeed.runtime.lr_schedules import WarmupDecayLR

    default = load_config(CONFIGS / "tiny_mpmr.yaml")
    assert deepspeed_config(default, 1)["scheduler"]["params"]["total_num_steps"] == \
        default.train.train_steps
    cfg = load_config(CONFIGS / "tiny_mpmr.yaml", ["optim.decay_steps=10", "optim.min_lr=1e-4",
                                                   "optim.lr=1e-3", "train.train_steps=20"])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = WarmupDecayLR(opt, **deepspeed_config(cfg, 1)["scheduler"]["params"])
    lrs = []
    for _ in range(20):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(1e-3) and lrs[9] > 1e-4
    assert lrs[10:] == pytest.approx([1e-4] * 10)  # iteration 10 = decay_steps, then held
    for sets, message in ((["optim.decay_steps=999999"], "optim.decay_steps=999999"),
                          (["optim.decay_steps=5", "optim.warmup_steps=8"],
                           r"is longer than optim.decay_steps \(5\)")):
        with pytest.raises(ConfigError, match=message):
            validate(load_config(CONFIGS / "tiny_mpmr.yaml", sets), 1)


def test_mglm_recipe_holds_the_reference_values():
    """configs/mglm_large.yaml: spec mGLM.md A1.1 (ratios), A2.3 (released shape), A2.4."""
    large = load_config(CONFIGS / "mglm_large.yaml")
    m, g, o, t = large.model, large.mglm, large.optim, large.train
    assert large.objective == "mglm" and large.data.alpha == 0.3
    assert (m.num_layers, m.hidden_size, m.num_heads, m.intermediate_size) == (24, 1536, 16, 6144)
    assert m.max_position_embeddings == 1025 and large.data.max_seq_len == 512
    assert (g.bert_prob, g.gap_sentence_prob, g.avg_block_length) == (0.5, 0.3, 3.0)
    assert (g.gpt_min_ratio, g.block_mask_prob, g.short_seq_prob) == (0.25, 0.1, 0.02)
    assert (o.lr, o.weight_decay, o.betas, o.eps, o.clip_grad) == (1e-4, 0.01, (0.9, 0.98),
                                                                   1e-6, 1.0)
    assert (t.global_batch_size, t.micro_batch_size, t.train_steps) == (2560, 10, 500_000)
    ds = deepspeed_config(large, 64)
    params = ds["scheduler"]["params"]
    # warmup 0.02 x 400k; linear decay to 0.1 x lr at 400k, held until 500k
    assert params["warmup_num_steps"] == 8000 and params["total_num_steps"] == 400_000
    assert params["warmup_max_lr"] == 1e-4 and params["warmup_min_lr"] == pytest.approx(1e-5)
    assert ds["gradient_accumulation_steps"] == 4 and ds["fp16"]["enabled"]



def test_veco_settings_are_checked_before_any_worker(tiny_veco_data, tmp_path):
    base = [f"data.paths=[{tiny_veco_data / 'corpus'}]",
            f"data.parallel_paths=[{tiny_veco_data / 'parallel'}]", f"run_dir={tmp_path}"]
    validate(load_config(CONFIGS / "tiny_veco.yaml", base), 2)
    for sets, message in (
            (["veco.loss=bogus"], "veco.loss must be one of"),
            (["veco.loss=mlm", "veco.freeze_steps=2"], "veco.freeze_steps trains only"),
            (["veco.seq2seq_decoder_layers=3"], "seq2seq_decoder_layers=3 > model.num_layers"),
            (["veco.cross_attention_init=copy"], "cross_attention_init must be one of"),
            (["model.max_position_embeddings=60"], "TLM pair"),
            (["objective=glm"], "objective: 'glm' is not one of"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate(load_config(CONFIGS / "tiny_veco.yaml", base + sets), 2)
    with pytest.raises(ConfigError, match="parallel_paths is for VECO"):
        validate(load_config(CONFIGS / "tiny_mpmr.yaml",
                             [f"data.parallel_paths=[{tiny_veco_data / 'parallel'}]"]), 1)
