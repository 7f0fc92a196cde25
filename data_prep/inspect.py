"""`python -m data_prep inspect DIR [--json] [--n N]` — decode built examples back to text.

DIR is one built folder or a root whose sub-folders are built folders. MRC examples print their
query, context (answers marked ⟦…⟧) and answers; with --json one object per line:
`{"lang", "query", "context", "answers": [text, …], "answerable"}`. Corpus and parallel folders
decode their segments / pairs. The tokenizer recorded in the manifest is used unless
--tokenizer says otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from data_prep.format import MANIFEST, CorpusDataset, MRCDataset, ParallelDataset, read_manifest

READERS = {"mrc": MRCDataset, "corpus": CorpusDataset, "parallel": ParallelDataset}


def built_folders(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if (root / MANIFEST).is_file() or (root / ".work").is_dir():
        return [root]
    found = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not found:
        read_manifest(root)  # raises the explanatory error
    return found


def decode_mrc(example, tokenizer, lang: str) -> dict:
    ids = example.input_ids.tolist()
    query_end = ids.index(tokenizer.sep_token_id)
    cs, ce = example.context_start, example.context_end
    answers = [tokenizer.decode(ids[s:e + 1]) for s, e in example.answer_spans.tolist()]
    return {"lang": lang, "query": tokenizer.decode(ids[1:query_end]),
            "context": tokenizer.decode(ids[cs:ce]), "answers": answers,
            "answerable": example.answerable}


def marked_context(example, tokenizer) -> str:
    """Context text with every gold span wrapped in ⟦ ⟧ (decoded piece by piece)."""
    ids = example.input_ids.tolist()
    pieces, pos = [], example.context_start
    for s, e in sorted(example.answer_spans.tolist()):
        pieces += [tokenizer.decode(ids[pos:s]), "⟦" + tokenizer.decode(ids[s:e + 1]) + "⟧"]
        pos = e + 1
    pieces.append(tokenizer.decode(ids[pos:example.context_end]))
    return " ".join(p for p in pieces if p)


def iter_decoded(folder: Path, tokenizer_path: str | None, n: int | None) -> Iterator[dict]:
    from data_prep.tokenizer import load_tokenizer

    manifest = read_manifest(folder)
    dataset = READERS[manifest["kind"]](folder)
    tokenizer = load_tokenizer(tokenizer_path or manifest["tokenizer"]["name_or_path"])
    count = len(dataset) if n is None else min(n, len(dataset))
    for i in range(count):
        item = dataset[i]
        if manifest["kind"] == "mrc":
            record = decode_mrc(item, tokenizer, dataset.lang)
            record["marked"] = marked_context(item, tokenizer)
        elif manifest["kind"] == "parallel":
            record = {"src_lang": manifest.get("src_lang"), "tgt_lang": manifest.get("tgt_lang"),
                      "src": tokenizer.decode(item[0]), "tgt": tokenizer.decode(item[1])}
        else:
            record = {"lang": dataset.lang, "segments": [tokenizer.decode(s) for s in item]}
        yield record


def register(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="decode built examples back to text")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--n", type=int, default=None, help="examples per folder (default: all)")
    p.add_argument("--tokenizer", default=None, help="override the manifest's tokenizer path")
    p.set_defaults(func=_run)


def _run(args) -> int:
    out = sys.stdout
    for folder in built_folders(args.dir):
        for record in iter_decoded(folder, args.tokenizer, args.n):
            if args.json:
                record.pop("marked", None)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            elif "query" in record:
                out.write(f"[{record['lang']}] {'answerable' if record['answerable'] else 'unanswerable'}"
                          f"\n  Q: {record['query']}\n  C: {record['marked']}\n"
                          f"  A: {record['answers']}\n\n")
            else:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0
