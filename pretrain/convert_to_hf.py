"""ZeRO checkpoint of an mPMR or VECO run → Hugging Face folder.

    python -m pretrain.convert_to_hf --checkpoint RUN_DIR [--tag TAG] --out DIR
                                     [--dtype fp32|bf16|fp16] [--tokenizer DIR] [--overwrite]
                                     [--form plug-out|plug-in|seq2seq|all]   (VECO runs)

VECO runs (`objective: veco`) take the same steps up to the weights, then `pretrain.veco_export`
builds the chosen form (a stock XLMRobertaForMaskedLM, our VecoForMaskedLM with `hf_veco.py`, or
a stock EncoderDecoderModel; `all` writes one subfolder per form). mGLM runs (`objective: mglm`)
write one `pretrain.hf_glm.GlmForBlankInfilling` folder with `hf_glm.py` as remote code (see
`pretrain.glm_export`). The rest of this docstring describes the mPMR form.

Steps: pick the tag (`latest` = the newest *complete* checkpoint, see `pretrain.checkpoint`;
a damaged one — files missing, truncated or failing their checksum — is skipped with a
warning; an incomplete or damaged `--tag` is refused) → consolidate the fp32 master weights with
DeepSpeed's `get_fp32_state_dict_from_zero_checkpoint` (ZeRO 1-3, any world size; ZeRO-0 reads
the module state DeepSpeed saved); weights holding NaN/inf are refused → rename (`encoder.*` →
`roberta.*`, `extractor.*` unchanged; wrapper prefixes dropped) → load into
`pretrain.hf_mpmr.MPMRForSpanExtraction` built from the run's resolved config (client state,
else RUN_DIR/config.yaml), re-tie tied weights → write
`model.safetensors`, `config.json`, `hf_mpmr.py` (copied verbatim by `save_pretrained`), the
run's tokenizer (from the data manifests, or `--tokenizer`) and `xpretrain.json` (provenance:
run dir, tag, step, data manifest hash, tokenizer fingerprint).

The folder loads offline with `XLMRobertaModel.from_pretrained(DIR)` (encoder only) and
`AutoModel.from_pretrained(DIR, trust_remote_code=True)` (encoder + extractor); see
`pretrain.hf_mpmr` for the layout. Output is written to a sibling temp folder and renamed, so a
crash never leaves a half-written DIR.

Exit codes: 0 = written; 2 = a problem the user can fix (one `error: …` line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import torch
from torch import Tensor

from pretrain import checkpoint
from pretrain.hf_mpmr import MPMRConfig, MPMRForSpanExtraction

PROVENANCE = "xpretrain.json"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: training-model prefix → Hugging Face prefix (`pretrain.model.MPMRModel` → MPMRForSpanExtraction)
NAME_MAP = (("encoder.", "roberta."), ("extractor.", "extractor."))
#: prefixes wrappers put in front of parameter names (DDP/DeepSpeed, torch.compile)
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class ConversionError(RuntimeError):
    """The checkpoint or the arguments cannot be converted; the message says what to do."""


# ---------------------------------------------------------------------------- names and configs

def to_hf_name(name: str) -> str:
    """Training-model parameter name → `MPMRForSpanExtraction` name (raises for unknown ones)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix):], True
    for ours, theirs in NAME_MAP:
        if name.startswith(ours):
            return theirs + name[len(ours):]
    raise ConversionError(f"checkpoint holds parameter {name!r}, which is neither in the encoder "
                          f"nor in the extractor of an mPMR model; is this an mPMR run?")


def to_hf_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a training state dict (`MPMRModel.state_dict()` or DeepSpeed's consolidated one)."""
    out: dict[str, Tensor] = {}
    for name, tensor in state.items():
        new = to_hf_name(name)
        if new in out:
            raise ConversionError(f"two checkpoint entries map to {new!r}")
        out[new] = tensor
    return out


def mpmr_config(encoder_config, extractor_size: int, extractor_dropout: float) -> MPMRConfig:
    """`MPMRConfig` = every field of an `XLMRobertaConfig` + the extractor sizes."""
    fields = encoder_config.to_dict()
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "dtype",
                "torch_dtype", "_name_or_path"):
        fields.pop(key, None)
    fields.update(extractor_size=int(extractor_size), extractor_dropout=float(extractor_dropout))
    return MPMRConfig.from_dict(fields)


def hf_config_for_run(cfg, tokenizer_info: dict) -> MPMRConfig:
    """The exported config of a run (`RunConfig`), built as `pretrain.model.build_model` built
    the encoder: tiny sizes + the data's tokenizer ids, or the config of `model.init_from`."""
    from transformers import XLMRobertaConfig

    from pretrain.model import tiny_encoder_config

    m = cfg.model
    if m.init_from == "tiny":
        encoder = tiny_encoder_config(m, tokenizer_info)
    else:
        try:
            encoder = XLMRobertaConfig.from_pretrained(m.init_from,
                                                       local_files_only=Path(m.init_from).is_dir())
        except OSError as err:
            raise ConversionError(f"the run started from model.init_from={m.init_from}, whose "
                                  f"config.json is needed to rebuild the encoder config: {err}") \
                from None
    return mpmr_config(encoder, m.extractor_size, m.dropout)


def load_into(model: torch.nn.Module, state: dict[str, Tensor]) -> None:
    """Copy `state` into `model` (a `PreTrainedModel`) and re-tie its tied weights.

    Entries DeepSpeed leaves out because they are tied to another one may be missing; anything
    else missing or left over, or a shape mismatch, is a `ConversionError`.
    """
    expected = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise ConversionError(f"{len(wrong)} tensors have another shape than the model rebuilt "
                              f"from the run config, e.g. {'; '.join(wrong[:3])}")
    result = model.load_state_dict(state, strict=False)
    model.tie_weights()
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise ConversionError(f"checkpoint and model disagree: missing {missing[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]}")


def from_training_model(model) -> MPMRForSpanExtraction:
    """`pretrain.model.MPMRModel` → `MPMRForSpanExtraction` with the same weights (fp32 copy on
    the model's device, eval mode). Not for ZeRO-3-partitioned modules: consolidate first."""
    linear, dropout = model.extractor[0], model.extractor[2]
    config = mpmr_config(model.encoder.config, linear.out_features, dropout.p)
    hf = MPMRForSpanExtraction(config).to(linear.weight.device)
    load_into(hf, to_hf_state_dict(model.state_dict()))
    return hf.eval()


# ---------------------------------------------------------------------------- checkpoint lookup

def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def resolve_tag(checkpoint_arg: str | Path, tag: str = "latest", warn=_warn) -> Path:
    """RUN_DIR (or RUN_DIR/checkpoints, or a step_NNNNNN folder) + tag → complete, intact tag
    folder (checksums verified). "latest" skips damaged tags, reporting each through `warn`."""
    path = Path(checkpoint_arg)
    if not path.exists():
        raise ConversionError(f"--checkpoint {path}: no such directory")
    if not path.is_dir():
        raise ConversionError(f"--checkpoint {path}: expected a run directory, got a file")
    if checkpoint.TAG_RE.match(path.name) and tag == "latest":
        root, tag = path.parent, path.name
    elif (path / checkpoint.CHECKPOINTS).is_dir():
        root = path / checkpoint.CHECKPOINTS
    else:
        root = path
    every = checkpoint.list_checkpoints(root, complete_only=False)
    complete = [p.name for p in every if checkpoint.is_complete(p)]
    if tag == "latest":
        try:
            found = checkpoint.newest_intact(root, check=checkpoint.verify, warn=warn,
                                             action="converting")
        except checkpoint.ResumeError as err:
            raise ConversionError(f"--checkpoint {path}: {err}") from None
        if found is None:
            raise ConversionError(
                f"--checkpoint {path}: no complete checkpoint in {root} (a step_NNNNNN folder with "
                f"{checkpoint.COMPLETE}" + (f"; incomplete: {', '.join(p.name for p in every)}"
                                            if every else "") + ")")
        return found
    tag_dir = root / tag
    if not tag_dir.is_dir():
        raise ConversionError(f"--tag {tag}: no such checkpoint in {root}; complete ones: "
                              f"{', '.join(complete) or 'none'}")
    if not checkpoint.is_complete(tag_dir):
        raise ConversionError(f"--tag {tag}: {tag_dir} is incomplete (no {checkpoint.COMPLETE}; "
                              f"its save was interrupted); convert a complete one: "
                              f"{', '.join(complete) or 'none'}")
    problems = checkpoint.verify(tag_dir)
    if problems:
        raise ConversionError(f"--tag {tag}: {checkpoint.damaged(tag_dir, problems)}; convert "
                              f"another one (without --tag, the newest intact one)")
    return tag_dir


def run_config(tag_dir: Path, state: checkpoint.ClientState):
    """The run's resolved `RunConfig`: from the checkpoint, else RUN_DIR/config.yaml."""
    from pretrain.config import ConfigError, config_from_dict, load_config

    try:
        if state.config:
            return config_from_dict(state.config)
        yaml_path = tag_dir.parent.parent / "config.yaml"
        if yaml_path.is_file():
            return load_config(yaml_path)
    except ConfigError as err:
        raise ConversionError(f"the run config stored with {tag_dir} does not load: {err}") \
            from None
    raise ConversionError(f"{tag_dir} stores no run config and "
                          f"{tag_dir.parent.parent / 'config.yaml'} is missing")


def consolidate(tag_dir: Path, zero_stage: int) -> dict[str, Tensor]:
    """fp32 weights of the whole model from one DeepSpeed tag folder (DeepSpeed's own code)."""
    import contextlib
    import logging

    from deepspeed.utils import logger as ds_logger
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    ds_logger.setLevel(logging.WARNING)
    try:
        if zero_stage == 0 and not list(tag_dir.glob("*_optim_states.pt")):
            # No ZeRO partitions: DeepSpeed's model-states file holds the whole module.
            states = torch.load(tag_dir / "mp_rank_00_model_states.pt", map_location="cpu",
                                weights_only=False)
            return {k: v.float() if v.is_floating_point() else v
                    for k, v in states["module"].items()}
        with contextlib.redirect_stdout(sys.stderr):  # its progress prints
            return get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
    # Verified checkpoints get here intact; a format-1 one (no file table) may not.
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, AssertionError,
            pickle.UnpicklingError) as err:
        raise ConversionError(f"DeepSpeed cannot consolidate {tag_dir}: "
                              f"{type(err).__name__}: {err}") from None


def check_finite(tag_dir: Path, weights: dict[str, Tensor]) -> None:
    """Refuse to export NaN/inf weights (a run that diverged before this checkpoint)."""
    bad, where = checkpoint.count_nonfinite(weights.items())
    if bad:
        raise ConversionError(f"{tag_dir} holds non-finite weights ({bad} values, e.g. in "
                              f"{where}); pick an earlier --tag")


def manifest_tokenizer(cfg) -> dict:
    """The tokenizer block of the run's data manifests (MRC folders for mPMR; the first corpus
    or parallel folder for VECO, whose folders `config.validate` checked to share it)."""
    from dataclasses import replace

    from data_prep.format import read_manifest
    from pretrain.config import ConfigError, data_folders, read_manifests

    if cfg.objective == "mpmr":
        return read_manifests(cfg.data)[0][1]["tokenizer"]
    for paths in (cfg.data.paths, cfg.data.parallel_paths):
        if paths:
            return read_manifest(data_folders(replace(cfg.data, paths=paths))[0])["tokenizer"]
    raise ConfigError("the run config names no data folders")


def run_tokenizer(cfg, override: str | None):
    """(tokenizer, manifest tokenizer block or None): `override`, else the manifest's
    `name_or_path`; a fingerprint that differs from the data's is an error."""
    from data_prep.tokenizer import load_tokenizer, tokenizer_info
    from pretrain.config import ConfigError

    try:
        manifest_tok = manifest_tokenizer(cfg)
    except (ConfigError, FileNotFoundError, KeyError) as err:
        if override is None:
            raise ConversionError(f"cannot read the run's data manifests to find its tokenizer "
                                  f"({err}); pass --tokenizer DIR") from None
        manifest_tok = None
    source = override or manifest_tok["name_or_path"]
    try:
        tokenizer = load_tokenizer(source)
    except (FileNotFoundError, NotADirectoryError, OSError, ValueError) as err:
        hint = "" if override else "; pass --tokenizer DIR"
        raise ConversionError(f"tokenizer {source}: {err}{hint}") from None
    if manifest_tok is not None:
        found = tokenizer_info(tokenizer)["fingerprint"]
        if found != manifest_tok.get("fingerprint"):
            raise ConversionError(f"tokenizer {source} (fingerprint {found[:12]}…) is not the "
                                  f"one the run's data was built with ({manifest_tok['name_or_path']}"
                                  f", fingerprint {str(manifest_tok.get('fingerprint'))[:12]}…)")
    return tokenizer, manifest_tok


# ---------------------------------------------------------------------------- conversion

def convert(checkpoint_arg: str | Path, out: str | Path, *, tag: str = "latest",
            dtype: str = "fp32", tokenizer: str | None = None,
            overwrite: bool = False, form: str | None = None) -> Path:
    """Write the Hugging Face folder `out` for one checkpoint; returns `out`.

    `form` (VECO only): "plug-out" (default), "plug-in", "seq2seq", or "all" (one subfolder
    per form under `out`). Raises `ConversionError` for problems the user can fix."""
    from data_prep.tokenizer import tokenizer_info

    if dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConversionError(f"--out {out} exists and is not empty; pass --overwrite or pick "
                              f"another folder")
    tag_dir = resolve_tag(checkpoint_arg, tag)
    try:
        state = checkpoint.read_client_state(tag_dir)
    except checkpoint.ResumeError as err:
        raise ConversionError(str(err)) from None
    cfg = run_config(tag_dir, state)
    if cfg.objective != "veco" and form is not None:
        raise ConversionError(f"--form {form} is for VECO runs; this is an {cfg.objective} run "
                              f"(one form)")
    tok, manifest_tok = run_tokenizer(cfg, tokenizer)
    info = manifest_tok or tokenizer_info(tok)
    consolidated = consolidate(tag_dir, state.zero_stage)
    check_finite(tag_dir, consolidated)
    if cfg.objective == "veco":
        from pretrain import veco_export

        forms = veco_export.FORMS if form == "all" else (form or "plug-out",)
        bad = [f for f in forms if f not in veco_export.FORMS]
        if bad:
            raise ConversionError(f"--form {form}: expected one of "
                                  f"{', '.join(veco_export.FORMS)} or all")
        net = veco_network(cfg, info, consolidated, len(tok))
        del consolidated
        models = {f: veco_export.export_model(net, f, cfg.veco.seq2seq_decoder_layers)
                  for f in forms}
        folders = {f: (out / f if form == "all" else out) for f in forms}
    elif cfg.objective == "mglm":
        from pretrain import glm_export

        try:
            net = glm_export.network_from_state(cfg.model, cfg.mglm, info, consolidated)
        except glm_export.GlmExportError as err:
            raise ConversionError(str(err)) from None
        del consolidated
        models, folders = {None: net}, {None: out}
    else:
        config = hf_config_for_run(cfg, info)
        if len(tok) > config.vocab_size:
            raise ConversionError(f"tokenizer has {len(tok)} ids but the model only "
                                  f"{config.vocab_size} embeddings")
        weights = to_hf_state_dict(consolidated)
        del consolidated
        model = MPMRForSpanExtraction(config)
        load_into(model, weights)
        del weights
        models, folders = {None: model}, {None: out}
    provenance = {
        "format_version": 1,
        "converter": "pretrain.convert_to_hf",
        "objective": cfg.objective,
        "run_dir": str(tag_dir.parent.parent.resolve()),
        "checkpoint": str(tag_dir.resolve()),
        "tag": tag_dir.name,
        "step": state.step,
        "consumed_samples": state.consumed_samples,
        "zero_stage": state.zero_stage,
        "world_size": state.world_size,
        "data_hash": state.data_hash,
        "data_hashes": state.data_hashes,
        "tokenizer": {"name_or_path": str(tok.name_or_path),
                      "fingerprint": tokenizer_info(tok)["fingerprint"]},
        "dtype": dtype,
    }
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for key, model in models.items():
            folder = partial / folders[key].relative_to(out)
            folder.mkdir(parents=True, exist_ok=True)
            model = model.to(DTYPES[dtype]).eval()
            model.save_pretrained(folder)  # config.json, model.safetensors (+ our class file)
            tok.save_pretrained(folder)
            record = {**provenance, "model_type": model.config.model_type}
            if key is not None:
                record["form"] = key
            (folder / PROVENANCE).write_text(json.dumps(record, indent=1) + "\n",
                                             encoding="utf-8")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def veco_network(cfg, tokenizer_info: dict, consolidated: dict[str, Tensor], vocab: int):
    """The VECO network of a run (`pretrain.hf_veco.VecoForMaskedLM`) with the checkpoint's
    weights: the training wrapper's `net.` prefix dropped, tied weights re-tied."""
    from pretrain.hf_veco import VecoConfig, VecoForMaskedLM
    from pretrain.veco_model import network_config

    m = cfg.model
    if m.init_from == "tiny":
        config = network_config(m, tokenizer_info)
    else:
        base = hf_config_for_run(cfg, tokenizer_info)  # XLM-R fields of model.init_from
        config = VecoConfig(**{k: v for k, v in base.to_dict().items()
                               if k not in ("model_type", "architectures", "auto_map",
                                            "extractor_size", "extractor_dropout")})
    if vocab > config.vocab_size:
        raise ConversionError(f"tokenizer has {vocab} ids but the model only "
                              f"{config.vocab_size} embeddings")
    state = {}
    for name, tensor in consolidated.items():
        for prefix in WRAPPER_PREFIXES:
            name = name.removeprefix(prefix)
        if not name.startswith("net."):
            raise ConversionError(f"checkpoint holds parameter {name!r}, which is not part of a "
                                  f"VECO network; is this a VECO run?")
        state[name[len("net."):]] = tensor
    net = VecoForMaskedLM(config)
    load_into(net, state)
    return net.eval()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pretrain.convert_to_hf",
                                     description="ZeRO checkpoint of an mPMR run → Hugging Face "
                                                 "folder (safetensors + config + tokenizer).")
    parser.add_argument("--checkpoint", required=True,
                        help="run directory (or its checkpoints/ folder, or one step_NNNNNN folder)")
    parser.add_argument("--tag", default="latest",
                        help="checkpoint tag, e.g. step_000010 (default: the latest complete one "
                             "that is intact)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES),
                        help="weight dtype of the export (default fp32: DeepSpeed's master weights)")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the one named in the "
                                            "run's data manifests)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--form", help="VECO runs: plug-out (default: a stock "
                                       "XLMRobertaForMaskedLM folder), plug-in (cross-attention "
                                       "kept, trust_remote_code), seq2seq (a stock "
                                       "EncoderDecoderModel), or all (one subfolder each)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        out = convert(args.checkpoint, args.out, tag=args.tag, dtype=args.dtype,
                      tokenizer=args.tokenizer, overwrite=args.overwrite, form=args.form)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = next(out.rglob(PROVENANCE))
    print(f"wrote {out} (from {json.loads(record.read_text())['checkpoint']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
