"""Monolingual (`corpus`) and parallel (`parallel`) token datasets for MLM / TLM / CA-MLM / GLM.

`python -m data_prep corpus` turns documents (plain text with a blank line between documents,
or WikiExtractor JSON lines; `.gz`/`.bz2` ok) into the `corpus` layout of `data_prep.format`:
one IndexedDataset document per source document, its lines tokenized with the HF fast tokenizer
and packed greedily into segments of at most `max_seq_len - 2` ids (room for `<s>`/`</s>`).
With `--sentences` the packing units are sentences (spaCy's rule-based `sentencizer`) instead of
lines, so segment boundaries fall at sentence ends — VECO's adjacent segments (x, y).
`python -m data_prep parallel` turns two line-aligned files into the `parallel` layout.

Builds are split into fixed-size units (documents / lines, never crossing a file) found by a
scan of the inputs, so the output is identical for any worker count; units are built in a
`multiprocessing` pool from (file, byte offset, count) only, committed one by one, and merged
by `data_prep.shards` (resumable with `--resume`).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import html
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data_prep import sniff
from data_prep.format import read_manifest
from data_prep.shards import (ShardedBuild, add_part_options, check_writable, parse_part, run_tasks,
                             write_shard)
from data_prep.tokenizer import load_tokenizer, tokenizer_info


@dataclass(frozen=True)
class Unit:
    """One work unit: `count` documents (corpus) or lines (parallel) of `paths`, starting at
    the given decompressed byte offsets (one per path)."""

    index: int
    paths: tuple[str, ...]
    offsets: tuple[int, ...]
    count: int
    json_lines: bool = False  # corpus input is WikiExtractor JSON


@dataclass(frozen=True)
class Job:
    """What a worker needs besides the units: everything is a path or a number."""

    kind: str  # "corpus" | "parallel"
    work_dir: str
    tokenizer: str
    max_len: int  # corpus: max_seq_len; parallel: max ids per side
    sentences: bool = False  # corpus: pack sentences, not lines


# ---------------------------------------------------------------- reading inputs

def compression(path: str | Path) -> str:
    """"gzip", "bz2" or "" (detected by magic bytes, not by suffix)."""
    with open(path, "rb") as f:
        magic = f.read(3)
    return "gzip" if magic[:2] == b"\x1f\x8b" else "bz2" if magic == b"BZh" else ""


def open_binary(path: str | Path) -> BinaryIO:
    """Open a file for binary reading, decompressing gzip / bzip2."""
    opener = {"gzip": gzip.open, "bz2": bz2.open, "": open}[compression(path)]
    return opener(path, "rb")


def is_json_lines(path: str | Path) -> bool:
    """WikiExtractor `--json` output: the first non-blank line is an object with "text"."""
    with open_binary(path) as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except ValueError:
                    return False
                return isinstance(first, dict) and "text" in first
    return False


_LINK = re.compile(r'<a href="[^"]*">(.*?)</a>', re.S)


def _json_text(raw: bytes) -> str:
    """Article text of one WikiExtractor JSON line, links reduced to their anchor text."""
    text = json.loads(raw)["text"]
    if "&lt;a href=" in text:  # wikiextractor's default --html-safe escaping
        text = html.unescape(text)
    return _LINK.sub(r"\1", text)


def _read_documents(f: BinaryIO, offset: int, count: int | None, json_lines: bool,
                    skipped: Counter) -> Iterator[list[str]]:
    """`count` documents (None: all) from `offset`, each a list of non-empty lines. Dropped
    lines are counted in `skipped`: "invalid_utf8" (undecodable), and for JSON lines
    "malformed_json" (no JSON) and "missing_field" (no "text" string); a document may come out
    empty."""
    f.seek(offset)
    done = 0
    lines: list[str] = []
    started = False
    for raw in f:
        if not raw.strip():
            if started and not json_lines:
                yield lines
                done, lines, started = done + 1, [], False
                if done == count:
                    return
            continue
        if json_lines:
            try:
                text = _json_text(raw)
            except UnicodeDecodeError:
                skipped["invalid_utf8"] += 1
                text = ""
            except ValueError:
                skipped["malformed_json"] += 1
                text = ""
            except (KeyError, TypeError):
                skipped["missing_field"] += 1
                text = ""
            yield [line.strip() for line in text.split("\n") if line.strip()]
            done += 1
            if done == count:
                return
            continue
        started = True
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped["invalid_utf8"] += 1
            continue
        if line:
            lines.append(line)
    if started and (count is None or done < count):
        yield lines


def iter_documents(path: str | Path) -> Iterator[list[str]]:
    """All documents of one input (plain text or WikiExtractor JSON), as lists of lines."""
    with open_binary(path) as f:
        yield from _read_documents(f, 0, None, is_json_lines(path), Counter())


def scan_documents(paths: list[str], per_unit: int) -> list[Unit]:
    """Split documents into units of `per_unit` (never crossing a file); offsets are
    decompressed byte positions of each unit's first document."""
    starts: list[list] = []  # [path index, offset, count]
    json_flags = tuple(is_json_lines(p) for p in paths)
    for file_index, path in enumerate(paths):
        n_docs, offset, in_doc = 0, 0, False
        with open_binary(path) as f:
            for raw in f:
                blank = not raw.strip()
                if not blank and (json_flags[file_index] or not in_doc):
                    if n_docs % per_unit == 0:
                        starts.append([file_index, offset, 0])
                    starts[-1][2] += 1
                    n_docs += 1
                in_doc = not blank
                offset += len(raw)
    return [Unit(i, (paths[fi],), (off,), n, json_flags[fi])
            for i, (fi, off, n) in enumerate(starts)]


def scan_lines(paths: list[str], per_unit: int) -> list[Unit]:
    """Units of `per_unit` aligned lines over files that must have equal line counts."""
    offsets: list[list[int]] = []
    counts = []
    for path in paths:
        starts, n, offset = [], 0, 0
        with open_binary(path) as f:
            for raw in f:
                if n % per_unit == 0:
                    starts.append(offset)
                n += 1
                offset += len(raw)
        offsets.append(starts)
        counts.append(n)
    if len(set(counts)) > 1:
        raise ValueError(f"{paths[0]} has {counts[0]} lines but {paths[1]} has {counts[1]}; "
                         f"parallel files must be line-aligned")
    return [Unit(i, tuple(paths), tuple(o[i] for o in offsets),
                 min(per_unit, counts[0] - i * per_unit)) for i in range(len(offsets[0]))]


# ---------------------------------------------------------------- building units

_TOKENIZERS: dict[str, object] = {}


def _backend(tokenizer_dir: str):
    """The Rust tokenizer of a folder, loaded once per (forked) worker."""
    if tokenizer_dir not in _TOKENIZERS:
        _TOKENIZERS[tokenizer_dir] = load_tokenizer(tokenizer_dir).backend_tokenizer
    return _TOKENIZERS[tokenizer_dir]


def _encode(tokenizer_dir: str, lines: list[str]) -> list[np.ndarray]:
    """Token ids (no special tokens) of each line, with one batched call to the Rust backend."""
    encodings = _backend(tokenizer_dir).encode_batch_fast(lines, add_special_tokens=False)
    return [np.asarray(e.ids, dtype=np.int32) for e in encodings]


_SENTENCIZER: list = []  # one spaCy pipeline per (forked) worker


def _sentence_ends(lines: list[str]) -> list[np.ndarray]:
    """Per line: character offsets where its sentences end (rule-based `sentencizer`)."""
    if not _SENTENCIZER:
        import spacy

        nlp = spacy.blank("xx")
        nlp.add_pipe("sentencizer")
        _SENTENCIZER.append(nlp)
    return [np.array([sent.end_char for sent in doc.sents], dtype=np.int64)
            for doc in _SENTENCIZER[0].pipe(lines)]


def _encode_sentences(tokenizer_dir: str, lines: list[str]) -> list[list[np.ndarray]]:
    """Per line: the token ids of each of its sentences. The line is encoded whole (the ids
    are exactly those of `_encode`) and cut before the first token that starts at or after a
    sentence's end; a token straddling a boundary stays with the earlier sentence."""
    encodings = _backend(tokenizer_dir).encode_batch(lines, add_special_tokens=False)
    out = []
    for encoding, ends in zip(encodings, _sentence_ends(lines)):
        ids = np.asarray(encoding.ids, dtype=np.int32)
        starts = np.array([start for start, _ in encoding.offsets], dtype=np.int64)
        cuts = np.searchsorted(starts, ends[:-1], side="left")
        out.append([piece for piece in np.split(ids, cuts) if len(piece)])
    return out


def pack_segments(line_ids: list[np.ndarray], budget: int) -> list[np.ndarray]:
    """Greedily pack consecutive lines into segments of at most `budget` ids; a line longer
    than `budget` is cut into budget-sized pieces."""
    segments: list[np.ndarray] = []
    current: list[np.ndarray] = []
    used = 0
    for ids in line_ids:
        if used + len(ids) > budget and current:
            segments.append(np.concatenate(current))
            current, used = [], 0
        while len(ids) > budget:
            segments.append(ids[:budget])
            ids = ids[budget:]
        if len(ids):
            current.append(ids)
            used += len(ids)
    if current:
        segments.append(np.concatenate(current))
    return segments


def _corpus_unit(job: Job, unit: Unit, f: BinaryIO) -> dict:
    skipped: Counter = Counter()
    docs = list(_read_documents(f, unit.offsets[0], unit.count, unit.json_lines, skipped))
    flat = [line for doc in docs for line in doc]
    if not flat:
        line_units: list[list[np.ndarray]] = []
    elif job.sentences:  # packing units: the sentences of each line
        line_units = _encode_sentences(job.tokenizer, flat)
    else:
        line_units = [[ids] for ids in _encode(job.tokenizer, flat)]
    documents, empty, pos, text_bytes = [], 0, 0, 0
    for doc in docs:
        pieces = [piece for line in line_units[pos:pos + len(doc)] for piece in line]
        segments = pack_segments(pieces, job.max_len - 2)
        pos += len(doc)
        if segments:
            documents.append(segments)
            text_bytes += sum(len(line.encode("utf-8")) for line in doc) + len(doc) - 1
        else:
            empty += 1
    counts = {"documents": len(documents), "segments": sum(len(d) for d in documents),
              "adjacent_pairs": sum(len(d) - 1 for d in documents),
              "tokens": int(sum(len(s) for d in documents for s in d)), "lines": len(flat),
              "text_bytes": text_bytes,
              "skipped": {"empty": empty, "invalid_utf8": skipped.pop("invalid_utf8", 0),
                          **skipped}}  # JSON line problems only where there are any
    write_shard(job.work_dir, unit.index, documents, counts)
    return counts


def _parallel_unit(job: Job, unit: Unit, files: list[BinaryIO]) -> dict:
    skipped = {"empty": 0, "invalid_utf8": 0, "too_long": 0}
    sides: list[list[bytes]] = []
    for f, offset in zip(files, unit.offsets):
        f.seek(offset)
        sides.append([f.readline() for _ in range(unit.count)])
    pairs = []
    for src_raw, tgt_raw in zip(*sides):
        try:
            src, tgt = src_raw.decode("utf-8").strip(), tgt_raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped["invalid_utf8"] += 1
            continue
        if not src or not tgt:
            skipped["empty"] += 1
            continue
        pairs.append((src, tgt))
    ids = _encode(job.tokenizer, [s for s, _ in pairs] + [t for _, t in pairs])
    documents = []
    for src_ids, tgt_ids in zip(ids[:len(pairs)], ids[len(pairs):]):
        if max(len(src_ids), len(tgt_ids)) > job.max_len:
            skipped["too_long"] += 1
        elif len(src_ids) == 0 or len(tgt_ids) == 0:
            skipped["empty"] += 1
        else:
            documents.append([src_ids, tgt_ids])
    counts = {"pairs": len(documents), "src_tokens": int(sum(len(d[0]) for d in documents)),
              "tgt_tokens": int(sum(len(d[1]) for d in documents)), "skipped": skipped}
    write_shard(job.work_dir, unit.index, documents, counts)
    return counts


def _run_task(job: Job, units: list[Unit]) -> int:
    """Build a run of units that share their input files (opened once, read forward)."""
    files = [open_binary(p) for p in units[0].paths]
    try:
        for unit in units:
            if job.kind == "corpus":
                _corpus_unit(job, unit, files[0])
            else:
                _parallel_unit(job, unit, files)
    finally:
        for f in files:
            f.close()
    return len(units)


def _run_packed(args: tuple[Job, list[Unit]]) -> int:
    return _run_task(*args)


def _tasks(pending: list[Unit], workers: int) -> list[list[Unit]]:
    """Group pending units: one task per unit for plain files (seeking is free); contiguous runs
    per compressed file, at most `workers` runs each, so no stream is re-read from its start
    more than `workers` times."""
    tasks: list[list[Unit]] = []
    by_paths: dict[tuple[str, ...], list[Unit]] = {}
    for unit in pending:
        by_paths.setdefault(unit.paths, []).append(unit)
    for paths, units in by_paths.items():
        if not any(compression(p) for p in paths):
            tasks.extend([u] for u in units)
            continue
        size = -(-len(units) // max(1, workers))
        tasks.extend(units[i:i + size] for i in range(0, len(units), size))
    return tasks


def run_build(build: ShardedBuild, job: Job, units: list[Unit], workers: int, desc: str) -> None:
    """Build every uncommitted unit (in a pool when workers > 1), with a progress bar."""
    mine = set(build.pending(len(units)))
    pending = [u for u in units if u.index in mine]
    run_tasks([(job, task) for task in _tasks(pending, workers)], _run_packed, workers=workers,
              total=len(units), committed=len(units) - len(pending), desc=desc)


# ---------------------------------------------------------------- commands

def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def _input_params(paths: list[str | Path], check) -> list[dict]:
    """The build parameters of the inputs; `check(path)` refuses a file no build reads."""
    found = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input not found: {path}")
        check(path)
        found.append({"path": str(path.resolve()), "bytes": path.stat().st_size})
    return found


_TEXT = "expected UTF-8 text"
_DOCUMENTS = (f"{_TEXT} (a blank line between documents) or WikiExtractor --json lines "
              '({"title", "text"} objects)')


def check_text_input(path: Path, expected: str = f"{_TEXT}, one sentence per line") -> str:
    """The head of `path` as text; raises ValueError naming `path` when it is empty, binary or
    UTF-16."""
    head, whole = sniff.read_head(path)
    if not head and not whole:
        raise ValueError(f"{path} cannot be decompressed (a broken or cut-off .bz2/.gz file)")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ValueError(f"{path} is UTF-16 text: {expected} (convert it: iconv -f UTF-16 -t "
                         f"UTF-8)")
    text = sniff.head_text(head, utf16=False)
    looks = sniff.unusable(head, text)
    if looks is not None:
        raise ValueError(f"{path} is {looks}: {expected}")
    return text


def check_corpus_input(path: Path) -> None:
    """`check_text_input`, and also refuse HTML, XML dumps and JSON that is not WikiExtractor's."""
    text = check_text_input(path, _DOCUMENTS).lstrip()
    kind = sniff.markup(text)
    if kind == "html":
        raise ValueError(f"{path} is an HTML page: {_DOCUMENTS}")
    if kind == "mediawiki":
        raise ValueError(f"{path} is a MediaWiki XML dump: extract it first (python -m "
                         f"wikiextractor.WikiExtractor DUMP --json -o OUT), or use wiki-mrc")
    if text[:1] not in ("{", "[") or is_json_lines(path):
        return
    looks = sniff.json_document(text)
    if looks is None:
        try:
            first = json.loads(text.split("\n", 1)[0])
        except ValueError:
            return  # text that happens to start with a brace
        kind = "an object" if isinstance(first, dict) else f"a JSON {type(first).__name__}"
        looks = f'JSON lines without a "text" field (first line: {kind})'
    raise ValueError(f"{path} is {looks}: {_DOCUMENTS}")


def _check_units(build: ShardedBuild, units: list[Unit], what: str) -> None:
    if not units:
        shutil.rmtree(build.work_dir, ignore_errors=True)
        raise ValueError(f"no {what} in the inputs")


def build_corpus(inputs: list[str | Path], lang: str, tokenizer: str | Path, out_dir: str | Path,
                 *, max_seq_len: int = 512, workers: int = 1, resume: bool = False,
                 docs_per_shard: int = 10_000, sentences: bool = False,
                 part: tuple[int, int] | None = None, merge_only: bool = False) -> dict:
    """Tokenize monolingual documents into `out_dir` (`corpus` layout); returns the manifest.

    Segments hold at most `max_seq_len - 2` ids. `sentences`: pack sentences instead of lines,
    so that segments end at sentence ends (a sentence over the budget is still cut). The
    manifest counts `adjacent_pairs` = Σ (segments - 1) over documents. The result does not
    depend on `workers`.
    """
    if max_seq_len < 3:
        raise ValueError(f"--max-seq-len must be at least 3, got {max_seq_len}")
    _check_positive(docs_per_shard=docs_per_shard, workers=workers)
    sources = _input_params(inputs, check_corpus_input)
    check_writable(out_dir)
    info = tokenizer_info(load_tokenizer(tokenizer))
    params = {"inputs": sources, "lang": lang, "tokenizer": info["fingerprint"],
              "max_seq_len": max_seq_len, "docs_per_shard": docs_per_shard}
    if sentences:  # only when on: default builds keep the parameters (and --resume) of before
        params["sentences"] = True
    build = ShardedBuild(out_dir, "corpus", params, resume=resume, part=part, merge_only=merge_only)
    if build.complete:
        return read_manifest(out_dir)
    try:
        units = scan_documents([s["path"] for s in sources], docs_per_shard)
        job = Job("corpus", str(build.work_dir), str(tokenizer), max_seq_len, sentences)
        _check_units(build, units, "documents")
        run_build(build, job, units, workers, f"corpus {lang}")
        if part is not None:
            return build.part_report(len(units))
        return build.merge(len(units), {"lang": lang, "tokenizer": info})
    except BaseException:
        build.discard_unstarted()
        raise


def build_parallel(src: str | Path, tgt: str | Path, src_lang: str, tgt_lang: str,
                   tokenizer: str | Path, out_dir: str | Path, *, max_len: int = 256,
                   workers: int = 1, resume: bool = False, pairs_per_shard: int = 100_000,
                   part: tuple[int, int] | None = None, merge_only: bool = False) -> dict:
    """Tokenize line-aligned sentence pairs into `out_dir` (`parallel` layout); returns the
    manifest. Pairs with an empty or undecodable side, or a side over `max_len` ids, are
    dropped and counted under `skipped`."""
    _check_positive(max_len=max_len, pairs_per_shard=pairs_per_shard, workers=workers)
    sources = _input_params([src, tgt], check_text_input)
    check_writable(out_dir)
    info = tokenizer_info(load_tokenizer(tokenizer))
    params = {"inputs": sources, "src_lang": src_lang, "tgt_lang": tgt_lang,
              "tokenizer": info["fingerprint"], "max_len": max_len,
              "pairs_per_shard": pairs_per_shard}
    build = ShardedBuild(out_dir, "parallel", params, resume=resume, part=part, merge_only=merge_only)
    if build.complete:
        return read_manifest(out_dir)
    try:
        units = scan_lines([s["path"] for s in sources], pairs_per_shard)
        job = Job("parallel", str(build.work_dir), str(tokenizer), max_len)
        _check_units(build, units, "lines")
        run_build(build, job, units, workers, f"parallel {src_lang}-{tgt_lang}")
        if part is not None:
            return build.part_report(len(units))
        extra = {"lang": f"{src_lang}-{tgt_lang}", "src_lang": src_lang, "tgt_lang": tgt_lang,
                 "tokenizer": info}
        return build.merge(len(units), extra)
    except BaseException:
        build.discard_unstarted()
        raise


def register(subparsers) -> None:
    corpus = subparsers.add_parser(
        "corpus", help="monolingual documents -> token segments (MLM / CA-MLM / GLM)",
        description="Tokenize monolingual documents (blank line between documents, or "
                    "WikiExtractor JSON lines; .gz/.bz2 ok) into packed segments.")
    corpus.add_argument("--input", nargs="+", required=True, metavar="FILE")
    corpus.add_argument("--lang", required=True)
    corpus.add_argument("--max-seq-len", type=int, default=512,
                        help="segments hold at most this minus 2 ids")
    corpus.add_argument("--docs-per-shard", type=int, default=10_000,
                        help="documents per work unit (part of the build parameters)")
    corpus.add_argument("--sentences", action="store_true",
                        help="cut segments at sentence ends (spaCy sentencizer), not at line ends")
    corpus.set_defaults(func=_corpus_main)
    parallel = subparsers.add_parser(
        "parallel", help="line-aligned sentence pairs -> token pairs (TLM / CA-MLM)",
        description="Tokenize two line-aligned files into source/target id pairs.")
    parallel.add_argument("--src", required=True, metavar="FILE")
    parallel.add_argument("--tgt", required=True, metavar="FILE")
    parallel.add_argument("--src-lang", required=True)
    parallel.add_argument("--tgt-lang", required=True)
    parallel.add_argument("--max-len", type=int, default=256,
                          help="drop pairs with a side longer than this many ids")
    parallel.add_argument("--pairs-per-shard", type=int, default=100_000,
                          help="lines per work unit (part of the build parameters)")
    parallel.set_defaults(func=_parallel_main)
    for parser in (corpus, parallel):
        parser.add_argument("--tokenizer", required=True, help="tokenizer folder")
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--workers", type=int, default=1)
        parser.add_argument("--resume", action="store_true",
                            help="continue an interrupted build (same parameters)")
        add_part_options(parser)


def _corpus_main(args: argparse.Namespace) -> int:
    manifest = build_corpus(args.input, args.lang, args.tokenizer, args.out,
                            max_seq_len=args.max_seq_len, workers=args.workers,
                            resume=args.resume, docs_per_shard=args.docs_per_shard,
                            sentences=args.sentences, part=parse_part(args.part),
                            merge_only=args.merge)
    if "part" in manifest:
        print(json.dumps(manifest))
        return 0
    print(f"wrote {args.out}: {manifest['documents']} documents, {manifest['segments']} "
          f"segments ({manifest.get('adjacent_pairs', 0)} adjacent pairs), {manifest['tokens']} "
          f"tokens; skipped {manifest['skipped']}")
    return 0


def _parallel_main(args: argparse.Namespace) -> int:
    manifest = build_parallel(args.src, args.tgt, args.src_lang, args.tgt_lang, args.tokenizer,
                              args.out, max_len=args.max_len, workers=args.workers,
                              resume=args.resume, pairs_per_shard=args.pairs_per_shard,
                              part=parse_part(args.part), merge_only=args.merge)
    if "part" in manifest:
        print(json.dumps(manifest))
        return 0
    print(f"wrote {args.out}: {manifest['pairs']} pairs, {manifest['src_tokens']}+"
          f"{manifest['tgt_tokens']} tokens; skipped {manifest['skipped']}")
    return 0


