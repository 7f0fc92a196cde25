"""The two fine-tuning forms behind `python -m finetune.run --form mrc|standard`, one interface
so that `finetune.run` reads, trains, evaluates and reports both the same way:

* `MRCForm` (mPMR's): every task as MRC queries (`finetune.mrc_form`, query texts from
  `finetune.queries`) to the span extractor, trained by `train_loop.train_mrc`, decoded by
  `finetune.decode` (plus `--explain` rationales for pairs).
* `StandardForm` (the XLM-R baseline): the stock transformers heads of `finetune.standard`.

A form is built from the parsed arguments, the dataset kind and the resolved settings, and offers
`inputs(records, path, lang, name)` (what the model reads; called for every file before training,
so that a bad one fails fast), `load()` → (model, tokenizer) on CPU, `context_window()` (context
tokens of one window: doc_stride must fit in it; None when inputs are never windowed),
`train(model, tokenizer, records, inputs, device, precision, log)` → (logged records, facts
for results.json) and `predict(model, tokenizer, inputs, device, precision)` → (predictions,
rationales or None, encoding stats). Both train with `finetune.train_loop.train`.

Imports torch only when a form loads, trains or predicts; never imports DeepSpeed.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict

from finetune.mrc_form import SPECIAL_TOKENS  # <s> query </s></s> context </s>, as XLM-R's pairs

EVAL_CHUNK_FEATURES = 512  # features whose [n, n] logits are held in memory at once
TAGGING_TASKS = ("ner", "absa")


# ---------------------------------------------------------------------------- MRC form

def task_queries(kind: str, lang: str = "en") -> tuple[dict[str, str] | str | None, str | None]:
    """(queries, their language): label queries of tagging kinds in `lang` where the reference
    translated them (else English), the pair sub-task name for pair kinds, (None, None) for EQA."""
    from finetune.queries import PAIR_KINDS, TAGGING_KINDS, tagging_queries

    if kind in TAGGING_KINDS:
        return tagging_queries(kind, lang)
    if kind in PAIR_KINDS:
        return kind, "en"
    return None, None


def make_instances(task: str, records: list, queries) -> list:
    from finetune import mrc_form

    if task == "eqa":
        return mrc_form.eqa_instances(records)
    if task in TAGGING_TASKS:
        return mrc_form.tagging_instances(records, queries)
    return mrc_form.pair_instances(records, queries)


def decode(task: str, instances: list, features: list, logits: list,
           max_answer_tokens: int | None = None) -> dict:
    """Predictions in `finetune.evaluate`'s format for these instances."""
    from finetune import decode as dec

    if task == "eqa":
        return dec.decode_eqa(instances, features, logits, max_answer_tokens=max_answer_tokens)
    if task in TAGGING_TASKS:
        return dec.decode_tagging(instances, features, logits)
    return dec.decode_pair(instances, features, logits)


def predict(task: str, model, tokenizer, instances: list, settings: dict, *, device, precision,
            explain: str | None = None, stats: Counter | None = None) -> tuple[dict, dict]:
    """Decode every instance, a chunk of whole records at a time (bounded memory).
    Returns (predictions, rationales); rationales only for pair tasks with `explain` ("paper":
    two extra runs per pair, `decode.explain_runs`; "reference": `decode.explain_pair`)."""
    from finetune.decode import explain_pair, explain_runs
    from finetune.mrc_form import encode, explain_instances
    from finetune.train_loop import feature_logits

    groups: dict[str, list] = {}
    for inst in instances:
        groups.setdefault(inst.source_id, []).append(inst)
    predictions: dict = {}
    rationales: dict = {}
    chunk: list = []
    encode_args = _encode_args(settings)

    def run_model(batch: list) -> tuple[list, list]:
        features = encode(batch, tokenizer, stats=stats, **encode_args)
        return features, feature_logits(model, features, pad_id=tokenizer.pad_token_id,
                                        max_seq_len=settings["max_seq_len"], device=device,
                                        precision=precision)

    def flush() -> None:
        features, logits = run_model(chunk)
        found = decode(task, chunk, features, logits, settings.get("max_answer_tokens"))
        predictions.update(found)
        if explain == "reference":
            spans = explain_pair(chunk, features, logits, labels=found)
        elif explain == "paper":
            runs = explain_instances(chunk, found, tokenizer.sep_token)
            spans = explain_runs(runs, *run_model(runs))
        if explain:
            for source_id, found_spans in spans.items():
                rationales[source_id] = {"label": found.get(source_id),
                                         "rationales": [asdict(r) for r in found_spans]}
        chunk.clear()

    # instances per record ≈ labels; a chunk holds about EVAL_CHUNK_FEATURES windows
    for group in groups.values():
        chunk.extend(group)
        if len(chunk) >= EVAL_CHUNK_FEATURES:
            flush()
    if chunk:
        flush()
    return predictions, rationales


class MRCForm:
    """mPMR's form: label / question queries to the span extractor (`finetune.train_loop`)."""

    name = "mrc"

    def __init__(self, args, kind: str, settings: dict):
        self.args, self.kind, self.settings = args, kind, settings
        self.query_langs: dict[str, str | None] = {}  # input name → language of its queries

    def inputs(self, records: list, path, lang: str, name: str) -> list:
        """MRC instances of `records`, queried in `lang` where the reference has it."""
        from finetune.queries import TAGGING_KINDS

        per_eval = self.args.query_lang != "en"  # "eval", the default
        queries, used = task_queries(self.kind, lang if per_eval else "en")
        self.query_langs[name] = used
        if self.kind in TAGGING_KINDS and used != lang and per_eval:
            warn(f"{name}: the reference has no {self.kind} queries in {lang!r}; using English")
        try:
            return make_instances(self.args.task, records, queries)
        except ValueError as err:  # e.g. a label that has no query
            raise ValueError(f"{path}: {err}") from None

    def load(self):
        import transformers

        from data_prep.tokenizer import load_tokenizer
        from finetune.train_loop import load_model

        transformers.set_seed(self.settings["seed"])  # before load_model: a fresh extractor
        return (load_model(self.args.model, dropout=self.settings["dropout"]),
                load_tokenizer(self.args.model))

    def context_window(self) -> int:
        return self.settings["max_seq_len"] - self.settings["max_query_tokens"] - SPECIAL_TOKENS

    def train(self, model, tokenizer, records: list, instances: list, device, precision: str,
              log):
        from finetune.mrc_form import encode
        from finetune.train_loop import TrainOptions, train_mrc

        args, settings = self.args, self.settings
        stats: Counter = Counter()
        features = encode(instances, tokenizer, stats=stats, **_encode_args(settings))
        note(f"train ({self.kind}): {len(records)} records → "
             f"{stats['features']} features ({stats['windows_split']} split into windows, "
             f"{stats['contexts_truncated']} cut at --max-seq-len losing "
             f"{stats['answers_truncated']} gold spans, {stats['answers_unmappable']} gold spans "
             f"unmappable) on {device} in {precision}")
        # pair tasks batch whole pairs (all label queries of each), as the reference does
        source = {inst.id: inst.source_id for inst in instances}
        groups = [source[f.example_id] for f in features] if args.task == "pair" else None
        options = TrainOptions.from_settings(settings, grad_accum=args.grad_accum,
                                             log_every=args.log_every)
        loss_cells = "cls" if args.task == "pair" else "context"
        history = train_mrc(model, features, options, pad_id=tokenizer.pad_token_id,
                            max_seq_len=settings["max_seq_len"], device=device,
                            precision=precision, log=log, groups=groups, loss_cells=loss_cells)
        return history, {"loss_cells": loss_cells, "train_features": len(features)}

    def predict(self, model, tokenizer, instances: list, device, precision: str):
        stats: Counter = Counter()
        predictions, rationales = predict(self.args.task, model, tokenizer, instances,
                                          self.settings, device=device, precision=precision,
                                          explain=self.args.explain, stats=stats)
        return predictions, rationales if self.args.explain else None, stats


# ---------------------------------------------------------------------------- standard form

class StandardForm:
    """The XLM-R baseline: stock transformers heads (`finetune.standard`) on any XLM-R or
    mPMR-exported folder. Settings that do not apply are None in results.json: max_query_tokens
    outside eqa (there are no label queries), doc_stride for pairs (cut `longest_first`)."""

    name = "standard"

    def __init__(self, args, kind: str, settings: dict):
        self.args, self.kind, self.settings = args, kind, settings
        self.query_langs = None
        self.pair_task = kind if args.task == "pair" else None
        # the dataset's labels (the MRC form's queries), whether --train has each or not
        self.labels = set(task_queries(kind)[0]) if args.task in TAGGING_TASKS else None
        if args.task != "eqa":
            settings["max_query_tokens"] = None
        if args.task == "eqa" and settings["max_answer_tokens"] is None:
            from finetune.standard import DEFAULT_MAX_ANSWER_TOKENS

            settings["max_answer_tokens"] = DEFAULT_MAX_ANSWER_TOKENS

    def inputs(self, records: list, path, lang: str, name: str) -> list:
        """The records themselves; tagging labels must be the dataset's."""
        for sentence in records if self.labels is not None else ():
            unknown = {span.label for span in sentence.spans} - self.labels
            if unknown:
                raise ValueError(f"{path}: sentence {sentence.index} (line {sentence.line_no}) "
                                 f"has labels {sorted(unknown)} that the {self.kind} head does "
                                 f"not have; known: {sorted(self.labels)}")
        return records

    def load(self):
        from finetune import standard

        task, settings = self.args.task, self.settings
        names = (standard.iob2_names(sorted(self.labels)) if task == "ner"
                 else standard.label_names(task, [], self.pair_task))
        return standard.load_standard_model(task, self.args.model, num_labels=None,
                                            label_names=names, seed=settings["seed"],
                                            dropout=settings["dropout"])

    def context_window(self) -> int | None:
        if self.args.task == "eqa":
            return (self.settings["max_seq_len"] - self.settings["max_query_tokens"]
                    - SPECIAL_TOKENS)
        return self.settings["max_seq_len"] - 2 if self.args.task in TAGGING_TASKS else None

    def train(self, model, tokenizer, records: list, inputs: list, device, precision: str,
              log):
        from finetune.standard import fine_tune

        note(f"train ({self.kind}, standard heads): {len(records)} records on {device} in "
             f"{precision}")
        stats: Counter = Counter()
        settings = {**self.settings, "grad_accum": self.args.grad_accum,
                    "log_every": self.args.log_every}
        history = fine_tune(self.args.task, model, tokenizer, records, settings,
                            pair_task=self.pair_task, device=device, precision=precision,
                            log=log, stats=stats)
        return history, {"loss_cells": None, "train_features": stats["windows"]}

    def predict(self, model, tokenizer, records: list, device, precision: str):
        from finetune.standard import predict as predict_standard

        return predict_standard(self.args.task, model, tokenizer, records, self.settings,
                                pair_task=self.pair_task, device=device,
                                precision=precision), None, Counter()


FORMS = {form.name: form for form in (MRCForm, StandardForm)}


# ---------------------------------------------------------------------------- helpers

def _encode_args(settings: dict) -> dict:
    return {k: settings[k] for k in ("max_seq_len", "doc_stride", "max_query_tokens")}


def note(message: str) -> None:
    """A progress line on stderr (stdout holds the table)."""
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
