"""Run configuration: nested dataclasses, YAML recipes, `--set a.b=value` overrides, validation.

`load_config` turns a recipe plus overrides into a `RunConfig` (unknown keys and wrong types are
a `ConfigError` naming the key path); `validate` checks everything that can be checked before a
worker starts (batch arithmetic, data folders and their manifests, model sizes, the DeepSpeed
template); `deepspeed_config` builds the engine's JSON config from a template and our fields.

This module must stay cheap to import: no torch, no DeepSpeed, no megatron at import time.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter
from pydantic import ValidationError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DS_TEMPLATE_DIR = PROJECT_ROOT / "configs" / "ds"
PRECISIONS = ("fp32", "bf16", "fp16")
_STRICT = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ConfigError(ValueError):
    """A configuration the run cannot start with; the message names the key and what to do."""


@dataclass
class ModelConfig:
    __pydantic_config__ = _STRICT

    init_from: StrictStr = "tiny"
    """"tiny" = random XLM-R encoder from the tiny sizes below; otherwise a local Hugging Face
    folder or a hub name (e.g. "xlm-roberta-large") loaded with `from_pretrained`."""
    hidden_size: StrictInt = 32
    """Encoder width (tiny only)."""
    num_layers: StrictInt = 2
    """Encoder layers (tiny only)."""
    num_heads: StrictInt = 2
    """Attention heads (tiny only); must divide hidden_size."""
    intermediate_size: StrictInt = 64
    """Encoder feed-forward width (tiny only)."""
    max_position_embeddings: StrictInt = 514
    """Position table size (tiny only). XLM-R positions start at pad_id + 1, so it must be at
    least data.max_seq_len + pad_id + 1 (514 for 512 tokens)."""
    extractor_size: StrictInt = 1024
    """Hidden width of the span extractor FFN (paper: 1024)."""
    dropout: StrictFloat = 0.1
    """Dropout of the extractor; for tiny encoders also hidden/attention dropout."""
    fused_span_loss: StrictBool = False
    """Use `kernels.span_scores.span_bce_loss` (tiled, never builds [B,T,T] logits) instead of
    the naive masked loss."""
    relevance_weight: StrictFloat = 1.0
    """Weight of the (0, 0) relevance cell in the WAE mean: loss = (w·ℓ_00 + Σ span cells) /
    (w + #span cells) per batch. 1 = the paper and the reference (every valid cell counts the
    same); the CPU demo uses more so that a tiny model learns relevance in minutes."""


@dataclass
class DataConfig:
    __pydantic_config__ = _STRICT

    paths: list[StrictStr] = field(default_factory=list)
    """The objective's main data: MRC folders (mPMR) or `corpus` folders (VECO), each with a
    manifest.json, or roots whose subfolders are such folders."""
    parallel_paths: list[StrictStr] = field(default_factory=list)
    """VECO: `parallel` folders (one per language pair), or roots of them; empty for mPMR."""
    alpha: StrictFloat = 0.5
    """Language sampling temperature: p_i ∝ (n_i / N)^alpha (1 = natural, 0 = uniform)."""
    max_seq_len: StrictInt = 512
    """Longest sequence (tokens, specials included) the run accepts; longer data is an error."""
    max_query_tokens: StrictInt = 128
    """Longest query the run accepts; checked against the data's build parameters when the
    manifest records them."""
    eval_entities: StrictInt = 1000
    """Entities held out per language for evaluation, each with all its examples (answerable and
    unanswerable: every example of a held-out query), chosen by a permutation seeded from
    (data.seed, language) — the reference's `--PMR_test` (1000, PMR
    preprocessing_mPMR/wikipedia2mrc_multiprocess.py)."""
    num_workers: StrictInt = 2
    """Background DataLoader workers per rank (0 = load in the training process)."""
    seed: StrictInt = 1234
    """Seed of the held-out split and the blended sample order (with the epoch)."""


@dataclass
class OptimConfig:
    __pydantic_config__ = _STRICT

    lr: StrictFloat = 1e-5
    """Peak learning rate (AdamW)."""
    weight_decay: StrictFloat = 0.01
    """Decoupled weight decay (not applied to biases and LayerNorm weights)."""
    betas: tuple[StrictFloat, StrictFloat] = (0.9, 0.98)
    """AdamW betas."""
    eps: StrictFloat = 1e-6
    """AdamW epsilon."""
    warmup_steps: StrictInt = 0
    """Linear warmup length in optimizer steps; 0 = use warmup_ratio."""
    warmup_ratio: StrictFloat = 0.0
    """Warmup as a fraction of train.train_steps (used only when warmup_steps is 0)."""
    min_lr: StrictFloat = 0.0
    """Learning rate at the start of warmup and at the end of the linear decay."""
    decay_steps: StrictInt = 0
    """Step at which the linear decay reaches min_lr, held after it; 0 = train.train_steps.
    mGLM decays to 0.1 × lr at 400k of 500k steps (M:learning_rates.py:21-75)."""
    clip_grad: StrictFloat = 1.0
    """Global gradient-norm clipping (0 = off)."""


@dataclass
class TrainConfig:
    __pydantic_config__ = _STRICT

    global_batch_size: StrictInt = 256
    """Sequences per optimizer step over all ranks (= micro * world * accumulation)."""
    micro_batch_size: StrictInt = 8
    """Sequences per rank per forward/backward."""
    train_steps: StrictInt = 100_000
    """Optimizer steps of the whole run (the LR schedule ends here)."""
    precision: StrictStr = "bf16"
    """fp32 | bf16 | fp16 (fp16 uses dynamic loss scaling)."""
    zero_stage: StrictInt = 2
    """DeepSpeed ZeRO stage 0-3."""
    log_every: StrictInt = 10
    """Steps between rank-0 log lines / metrics.jsonl records."""
    eval_every: StrictInt = 1000
    """Steps between evaluations on the held-out split (0 = never)."""
    eval_batches: StrictInt = 10
    """Micro-batches per rank per evaluation (0 = the whole held-out split)."""
    save_every: StrictInt = 1000
    """Steps between checkpoints (0 = only at the end and on SIGTERM/SIGINT)."""
    keep_last: StrictInt = 3
    """Checkpoints kept in the run directory (older ones are deleted)."""
    seed: StrictInt = 1234
    """Seed of model init and dropout."""
    deepspeed_config: StrictStr = ""
    """DeepSpeed JSON template; "" = configs/ds/zero{zero_stage}.json. Our fields are filled in;
    a template value contradicting them is an error."""
    collective_timeout_s: StrictInt = 1800
    """Seconds a collective may wait for the other ranks before this rank gives up and exits
    non-zero (a hung or dead rank); gloo and NCCL (with TORCH_NCCL_ASYNC_ERROR_HANDLING)."""
    nonfinite: StrictStr = "skip"
    """What a step with a NaN / inf loss or gradient norm does: "skip" = its update is skipped
    and counted (DeepSpeed's fp16-overflow rule, for every precision), "stop" = the run stops at
    the first one. Either way the run stops after `nonfinite_patience` skips in a row."""
    nonfinite_patience: StrictInt = 20
    """Consecutive skipped (non-finite) steps after which the run stops (exit 3)."""


@dataclass
class VecoConfig:
    """VECO's method settings (objective: veco; ignored otherwise). Defaults: the paper's
    Table 8 (S2:466-472) where it gives a value; the README's decision table for the rest."""

    __pydantic_config__ = _STRICT

    mono_mask_prob: StrictFloat = 0.15
    """Masked share of the tokens of a monolingual segment (Table 8: 15 %)."""
    bilingual_mask_prob: StrictFloat = 0.25
    """Masked share of the tokens of a parallel sentence (Table 8: 25 %)."""
    leave_unmasked_prob: StrictFloat = 0.1
    """Of the masked positions: kept as they are (XLM-R / fairseq MaskTokensDataset: 10 %)."""
    random_token_prob: StrictFloat = 0.1
    """Of the masked positions: replaced by a random non-special token (fairseq: 10 %); the
    rest (80 %) become <mask>."""
    bilingual_batch_ratio: StrictInt = 4
    """Parallel pairs per bilingual step = this × train.global_batch_size (and per micro-batch
    × train.micro_batch_size): Table 8's 4096 bilingual / 1024 monolingual, the same token
    budget at 128 / 512 tokens."""
    bilingual_max_len: StrictInt = 128
    """Longest parallel sentence in tokens with <s> and </s> (Table 8: 128), per side."""
    schedule: StrictStr = "alternate"
    """"alternate": optimizer steps alternate monolingual (odd steps) and bilingual (even
    steps) batches ("alternately sample", S2:142); "mono" / "bilingual": only that stream."""
    loss: StrictStr = "ca_mlm"
    """"ca_mlm": Eq. 1 (H-stream MLM on x̂, ŷ + S-stream CA-MLM with stop-gradient);
    "mlm": the H-stream terms only (no cross-attention: the ablation baseline)."""
    tlm: StrictBool = True
    """Add TLM on bilingual batches (S2:143-144): MLM over <s> x̂ </s></s> ŷ </s>."""
    freeze_steps: StrictInt = 0
    """First optimizer steps that train only the cross-attention (S2:145-146; the length is
    not published): the other parameter groups run at lr 0."""
    cross_attention_init: StrictStr = "random"
    """"random" (N(0, initializer_range), the paper) or "self": copy each layer's
    self-attention (query/key/value/output dense and LayerNorm) into its cross-attention."""
    eval_documents: StrictInt = 2
    """Documents held out per monolingual language (all their adjacent pairs), chosen by a
    permutation seeded from (data.seed, language)."""
    eval_pairs: StrictInt = 50
    """Sentence pairs held out per language pair, chosen likewise."""
    seq2seq_decoder_layers: StrictInt = 6
    """Decoder layers of the seq2seq export: the last N pretrained layers (Table 4, N = 6)."""


@dataclass
class MglmConfig:
    """mGLM's blank-infilling settings (objective: mglm; ignored otherwise). Defaults: the
    mGLM-Large pretraining script (M:config/ds_multi_blockta_large.sh:8-15, spec mGLM.md A1.1)."""

    __pydantic_config__ = _STRICT

    bert_prob: StrictFloat = 0.5
    """Share of batches in [MASK] (span) mode (--bert-prob 0.5)."""
    gap_sentence_prob: StrictFloat = 0.3
    """Share of batches in [sMASK] (sentence) mode (--gap-sentence-prob 0.3); the rest,
    1 - bert_prob - gap_sentence_prob, are [gMASK] (suffix / long span) batches."""
    bert_ratio: StrictFloat = 0.15
    """[MASK] mode: span lengths are drawn until they cover this share of the tokens
    (constructor default, M:blocklm_utils.py:30)."""
    gap_sentence_ratio: StrictFloat = 0.15
    """[sMASK] mode: sentences are taken until they cover this share (M:arguments.py)."""
    avg_block_length: StrictFloat = 3.0
    """Poisson λ of the span lengths (--avg-block-length 3)."""
    max_block_length: StrictInt = 40
    """Span lengths are 1 .. max_block_length - 1 (M:blocklm_utils.py:32, 53)."""
    gpt_min_ratio: StrictFloat = 0.25
    """[gMASK] mode: the generated part is at least this share of the shortest sample
    (--gpt-min-ratio 0.25)."""
    gpt_infill_prob: StrictFloat = 0.5
    """[gMASK] mode: probability of the suffix variant for a single-document sample
    (M:blocklm_utils.py:392-394; the name is the reference's)."""
    block_mask_prob: StrictFloat = 0.1
    """[MASK] mode: each Part-B input token becomes [dBLOCK] with this probability
    (--block-mask-prob 0.1)."""
    short_seq_prob: StrictFloat = 0.02
    """Probability that a batch is cut into shorter windows (--short-seq-prob 0.02, A1.10)."""
    eval_documents: StrictInt = 2
    """Documents held out per language, chosen by a permutation seeded from (data.seed,
    language); evaluated with the same collator, seeded apart from training."""
    attention: StrictStr = "auto"
    """"auto" (FlexAttention on CUDA, SDPA with a boolean mask from sep elsewhere), "flex",
    "sdpa" or "dense" (an additive float mask, the reference's way; for benchmarks)."""


OBJECTIVES = ("mpmr", "veco", "mglm")


@dataclass
class RunConfig:
    __pydantic_config__ = _STRICT

    run_dir: StrictStr = "runs/mpmr"
    """Where checkpoints, metrics.jsonl, TensorBoard events and the resolved config go."""
    objective: StrictStr = "mpmr"
    """The pretraining method (`pretrain.objectives`): mpmr | veco | mglm."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    veco: VecoConfig = field(default_factory=VecoConfig)
    mglm: MglmConfig = field(default_factory=MglmConfig)


_ADAPTER = TypeAdapter(RunConfig)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-5` as a float (YAML 1.1 wants `1.0e-5`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _parse_value(text: str) -> Any:
    return yaml.load(text, Loader=_Loader) if text.strip() else ""


def apply_override(tree: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` (value parsed as YAML) to a nested dict in place."""
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {assignment!r}: expected KEY.PATH=VALUE, e.g. train.train_steps=20")
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {'.'.join(parts[:depth + 1])} is not a section")
        node = child
    node[parts[-1]] = _parse_value(value)


def _from_dict(tree: dict, source: str) -> RunConfig:
    try:
        return _ADAPTER.validate_python(tree)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            path = ".".join(str(p) for p in e["loc"]) or "(top level)"
            if e["type"] == "unexpected_keyword_argument":
                problems.append(f"unknown key '{path}'")
            else:
                problems.append(f"'{path}': {e['msg']} (got {e.get('input')!r})")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """YAML recipe (None = all defaults) + `a.b=value` overrides → `RunConfig`.

    Raises `ConfigError` naming the key path for unknown keys, wrong types or a bad override.
    """
    tree: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            tree = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        source = str(path)
    for assignment in overrides or []:
        apply_override(tree, assignment)
    if overrides:
        source += " with --set " + " ".join(overrides)
    return _from_dict(tree, source)


def config_to_dict(cfg: RunConfig) -> dict:
    """Plain JSON/YAML-able dict (tuples become lists); `_from_dict` of it gives `cfg` back."""
    return json.loads(json.dumps(asdict(cfg)))


def config_from_dict(tree: dict) -> RunConfig:
    """Inverse of `config_to_dict` (e.g. the config stored in a checkpoint)."""
    return _from_dict(copy.deepcopy(tree), "stored config")


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically); `load_config(path)` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(path)


# ----------------------------------------------------------------------------- data folders

def _is_languages_root(manifest: Path) -> bool:
    """ROOT/manifest.json of `wiki-mrc --langs` sums up ROOT/xx folders; it is no data folder."""

    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("kind") == "languages"
    except (OSError, ValueError, AttributeError):
        return False


def data_folders(data: DataConfig) -> list[Path]:
    """The MRC folders named by `data.paths` (a folder with a manifest, or a root whose
    subfolders hold manifests, in sorted order). Raises `ConfigError` for missing paths and
    interrupted builds."""
    from data_prep.format import MANIFEST
    from data_prep.shards import WORK

    if not data.paths:
        raise ConfigError("data.paths is empty: list MRC folders built by `python -m data_prep`")
    folders: list[Path] = []
    for raw in data.paths:
        path = Path(raw)
        if not path.is_dir():
            raise ConfigError(f"data.paths: {path} does not exist (or is not a folder)")
        if (path / MANIFEST).is_file() and not _is_languages_root(path / MANIFEST):
            folders.append(path)
            continue
        if (path / WORK).is_dir():
            raise ConfigError(f"data.paths: {path} has no {MANIFEST} but a {WORK}/ folder: its "
                              f"data_prep build was interrupted; rerun it with --resume")
        subdirs = sorted(p for p in path.iterdir() if p.is_dir())
        found = [p for p in subdirs if (p / MANIFEST).is_file()]
        broken = [p for p in subdirs if not (p / MANIFEST).is_file() and (p / WORK).is_dir()]
        if broken:
            raise ConfigError(f"data.paths: {broken[0]} has no {MANIFEST} but a {WORK}/ folder: "
                              f"its data_prep build was interrupted; rerun it with --resume")
        if not found:
            raise ConfigError(f"data.paths: {path} has no {MANIFEST} and no subfolder with one; "
                              f"point it at the output of `python -m data_prep`")
        folders.extend(found)
    if len(set(p.resolve() for p in folders)) != len(folders):
        raise ConfigError("data.paths names the same folder twice")
    return folders


def read_manifests(data: DataConfig) -> list[tuple[Path, dict]]:
    """(folder, manifest) per language; checks kind, languages and tokenizer identity."""
    from data_prep.format import FORMAT_VERSION, read_manifest

    out = []
    for folder in data_folders(data):
        manifest = read_manifest(folder)
        if manifest.get("kind") != "mrc":
            raise ConfigError(f"data.paths: {folder} holds '{manifest.get('kind')}' data; mPMR "
                              f"needs 'mrc' folders (python -m data_prep wiki-mrc)")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"data.paths: {folder} has format_version "
                              f"{manifest.get('format_version')}, this code reads {FORMAT_VERSION}; "
                              f"rebuild it")
        for key in ("lang", "tokenizer"):
            if key not in manifest:
                raise ConfigError(f"data.paths: {folder}/manifest.json has no '{key}'")
        out.append((folder, manifest))
    langs = [m["lang"] for _, m in out]
    dupes = sorted({lang for lang in langs if langs.count(lang) > 1})
    if dupes:
        raise ConfigError(f"data.paths: language(s) {dupes} appear in more than one folder")
    check_same_tokenizer(out, "data.paths: ")
    return out


def check_same_tokenizer(found: list[tuple[Path, dict]], where: str = "") -> None:
    """Every (folder, manifest) was tokenized with the first one's tokenizer (fingerprint)."""
    first_folder, first = found[0]
    for folder, manifest in found[1:]:
        a, b = first["tokenizer"].get("fingerprint"), manifest["tokenizer"].get("fingerprint")
        if a != b:
            raise ConfigError(f"{where}{folder} was tokenized with a different tokenizer "
                              f"(fingerprint {b}) than {first_folder} ({a}); rebuild it with the "
                              f"same --tokenizer")


# ----------------------------------------------------------------------------- validation

def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def resolve_template(cfg: RunConfig) -> Path:
    """Path of the DeepSpeed JSON template (tries the path as given, then the project root)."""
    name = cfg.train.deepspeed_config or str(DS_TEMPLATE_DIR / f"zero{cfg.train.zero_stage}.json")
    path = Path(name)
    if not path.is_absolute() and not path.is_file() and (PROJECT_ROOT / path).is_file():
        path = PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(f"train.deepspeed_config: {name} not found")
    return path


def validate(cfg: RunConfig, world_size: int) -> None:
    """Check a config before any worker starts; raises `ConfigError` with the first problem.

    Opens the data indexes to check sequence lengths (imports megatron-core, ~3 s once).
    """
    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.train
    _check(world_size >= 1, f"world size must be >= 1, got {world_size}")
    for name in ("global_batch_size", "micro_batch_size", "train_steps", "log_every", "keep_last"):
        _check(getattr(t, name) > 0, f"train.{name} must be > 0, got {getattr(t, name)}")
    for name in ("eval_every", "eval_batches", "save_every"):
        _check(getattr(t, name) >= 0, f"train.{name} must be >= 0, got {getattr(t, name)}")
    per_step = t.micro_batch_size * world_size
    _check(t.global_batch_size % per_step == 0,
           f"train.global_batch_size={t.global_batch_size} is not divisible by micro_batch_size "
           f"({t.micro_batch_size}) x world size ({world_size}) = {per_step}; pick a global batch "
           f"that is a multiple of {per_step} or change micro_batch_size")
    _check(t.precision in PRECISIONS, f"train.precision must be one of {PRECISIONS}, got "
           f"{t.precision!r}")
    _check(t.zero_stage in (0, 1, 2, 3), f"train.zero_stage must be 0-3, got {t.zero_stage}")
    _check(t.collective_timeout_s > 0,
           f"train.collective_timeout_s must be > 0, got {t.collective_timeout_s}")
    _check(t.nonfinite in ("skip", "stop"),
           f"train.nonfinite must be 'skip' or 'stop', got {t.nonfinite!r}")
    _check(t.nonfinite_patience >= 1,
           f"train.nonfinite_patience must be >= 1, got {t.nonfinite_patience}")
    _check(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    _check(0 <= o.min_lr <= o.lr, f"optim.min_lr must be in [0, optim.lr], got {o.min_lr}")
    _check(0 <= o.decay_steps <= t.train_steps,
           f"optim.decay_steps={o.decay_steps} must be in [0, train.train_steps="
           f"{t.train_steps}] (0 = decay until the last step)")
    _check(o.warmup_steps >= 0 and 0 <= o.warmup_ratio < 1,
           "optim.warmup_steps must be >= 0 and optim.warmup_ratio in [0, 1)")
    _check(not (o.warmup_steps and o.warmup_ratio),
           "set optim.warmup_steps or optim.warmup_ratio, not both")
    decay_end = o.decay_steps or t.train_steps
    _check(warmup_steps(cfg) <= decay_end,
           f"warmup ({warmup_steps(cfg)} steps) is longer than "
           f"{'optim.decay_steps' if o.decay_steps else 'train.train_steps'} ({decay_end})")
    _check(all(0 <= b < 1 for b in o.betas), f"optim.betas must be in [0, 1), got {o.betas}")
    _check(o.eps > 0 and o.weight_decay >= 0 and o.clip_grad >= 0,
           "optim.eps must be > 0, optim.weight_decay and optim.clip_grad >= 0")
    _check(d.alpha >= 0, f"data.alpha must be >= 0, got {d.alpha}")
    _check(d.max_seq_len > 0, "data.max_seq_len must be > 0")
    _check(d.num_workers >= 0, "data.num_workers must be >= 0")
    _check(0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}")
    _check(cfg.objective in OBJECTIVES,
           f"objective: {cfg.objective!r} is not one of {', '.join(OBJECTIVES)}")
    from pretrain.objectives import objective_for

    objective_for(cfg).validate(world_size)  # its data folders, model source and settings
    deepspeed_config(cfg, world_size)


def warmup_steps(cfg: RunConfig) -> int:
    """Warmup length in optimizer steps (warmup_steps, else round(warmup_ratio * train_steps))."""
    if cfg.optim.warmup_steps:
        return cfg.optim.warmup_steps
    return int(round(cfg.optim.warmup_ratio * cfg.train.train_steps))


def _validate_model(cfg: RunConfig, tokenizer: dict) -> None:
    m = cfg.model
    need_positions = cfg.data.max_seq_len + int(tokenizer.get("pad_id", 1)) + 1
    if m.init_from == "tiny":
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            _check(getattr(m, name) > 0, f"model.{name} must be > 0")
        _check(m.hidden_size % m.num_heads == 0,
               f"model.hidden_size={m.hidden_size} is not divisible by model.num_heads={m.num_heads}")
        positions = m.max_position_embeddings
    else:
        folder = Path(m.init_from)
        if not folder.exists():
            # A hub name: nothing to check offline; from_pretrained reports problems itself.
            _check("/" not in m.init_from.strip("/").split("/", 1)[-1] and
                   not m.init_from.startswith((".", "/")),
                   f"model.init_from: {m.init_from} is not a folder (and not a hub name)")
            return
        config_file = folder / "config.json"
        _check(config_file.is_file(), f"model.init_from: {folder} has no config.json; expected a "
               f"Hugging Face model folder (save_pretrained output)")
        hf = json.loads(config_file.read_text(encoding="utf-8"))
        vocab = int(hf.get("vocab_size", 0))
        _check(vocab >= int(tokenizer.get("vocab_size", 0)),
               f"model.init_from: {folder} has vocab_size {vocab} but the data's tokenizer has "
               f"{tokenizer.get('vocab_size')} ids")
        positions = int(hf.get("max_position_embeddings", need_positions))
    _check(positions >= need_positions,
           f"model max_position_embeddings={positions} is too small for data.max_seq_len="
           f"{cfg.data.max_seq_len} (XLM-R needs max_seq_len + pad_id + 1 = {need_positions})")


def _validate_data_lengths(cfg: RunConfig, manifests: list[tuple[Path, dict]]) -> None:
    import numpy as np

    from data_prep.format import MRCDataset

    for folder, manifest in manifests:
        params = manifest.get("params", {})
        # max_seq_len is checked exactly below; the query length only through the build params
        built = params.get("max_query_tokens")
        _check(built is None or int(built) <= cfg.data.max_query_tokens,
               f"data.paths: {folder} was built with max_query_tokens={built} > "
               f"data.max_query_tokens={cfg.data.max_query_tokens}; raise data.max_query_tokens "
               f"or rebuild the data")
        dataset = MRCDataset(folder)
        n = len(dataset)
        offsets = dataset.group_offsets()
        _check(offsets is not None,
               f"data.paths: {folder} has no entity groups (mrc.groups.npy), so no held-out split "
               f"by entity is possible; rebuild it with this version of data_prep")
        entities = len(offsets) - 1
        _check(entities > cfg.data.eval_entities,
               f"data.paths: {folder} has {entities} entities, not more than data.eval_entities="
               f"{cfg.data.eval_entities}; lower data.eval_entities")
        starts = dataset.indexed.document_indices[:-1]
        longest = int(np.max(dataset.indexed.sequence_lengths[starts])) if n else 0
        _check(longest <= cfg.data.max_seq_len,
               f"data.paths: {folder} holds sequences of up to {longest} tokens > data.max_seq_len="
               f"{cfg.data.max_seq_len}; raise data.max_seq_len or rebuild with a shorter limit")


# ----------------------------------------------------------------------------- DeepSpeed

def _merge_checked(template: dict, ours: dict, path: str = "") -> dict:
    """Deep-merge `ours` into `template`; a template leaf that differs from ours is an error."""
    out = copy.deepcopy(template)
    for key, value in ours.items():
        where = f"{path}{key}"
        if isinstance(value, dict):
            base = out.get(key, {})
            if not isinstance(base, dict):
                raise ConfigError(f"DeepSpeed template: '{where}' must be an object")
            out[key] = _merge_checked(base, value, where + ".")
        else:
            if key in out and out[key] != value and out[key] != "auto":
                raise ConfigError(f"DeepSpeed template sets '{where}'={out[key]!r} but the run config "
                                  f"implies {value!r}; remove it from the template (our config "
                                  f"owns it) or change the run config")
            out[key] = value
    return out


def deepspeed_config(cfg: RunConfig, world_size: int, *, load_universal: bool = False) -> dict:
    """The DeepSpeed config dict: the template with our batch sizes, clipping, ZeRO stage,
    precision and LR schedule filled in (the engine owns the scheduler; the optimizer is a
    client `torch.optim.AdamW`, so the template must not define one).

    `load_universal=True` adds `"checkpoint": {"load_universal": true}` (resume on another
    world size from a universal checkpoint).
    """
    t, o = cfg.train, cfg.optim
    path = resolve_template(cfg)
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"train.deepspeed_config: {path} is not valid JSON: {err}") from None
    for owned in ("optimizer", "scheduler"):
        if owned in template:
            raise ConfigError(f"DeepSpeed template {path} defines '{owned}'; remove it: the run "
                              f"config's optim section owns it")
    micro_steps = t.micro_batch_size * world_size
    if t.global_batch_size % micro_steps:
        raise ConfigError(f"train.global_batch_size={t.global_batch_size} is not divisible by "
                          f"micro_batch_size x world size = {micro_steps}")
    warmup = warmup_steps(cfg)
    ours: dict = {
        "train_batch_size": t.global_batch_size,
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": t.global_batch_size // micro_steps,
        "gradient_clipping": o.clip_grad,
        "zero_optimization": {"stage": t.zero_stage},
        "bf16": {"enabled": t.precision == "bf16"},
        "fp16": {"enabled": t.precision == "fp16"},
        "scheduler": {
            "type": "WarmupDecayLR",
            "params": {
                "total_num_steps": o.decay_steps or t.train_steps,
                "warmup_min_lr": o.min_lr,
                "warmup_max_lr": o.lr,
                # DeepSpeed needs >= 1 (and uses at least 2): warmup 0 = lr starts at min_lr.
                "warmup_num_steps": max(1, warmup),
                "warmup_type": "linear",
            },
        },
    }
    if load_universal:
        ours["checkpoint"] = {"load_universal": True}
    merged = _merge_checked(template, ours)
    if t.precision != "fp16":
        # Loss-scaling knobs of a template are meaningless without fp16; keep the block minimal.
        merged["fp16"] = {"enabled": False}
    if t.zero_stage == 0:
        merged["zero_optimization"] = {"stage": 0}
    return merged
