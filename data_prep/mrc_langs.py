"""All languages in one command: `wiki-mrc --input DUMP_DIR --langs all|xx,yy --out ROOT`.

Each language's input is found in DUMP_DIR by its name (`dewiki-20240601-pages-articles.xml.bz2`,
`de/`, `dewiki/`) or, failing that, by the dump header (`xml:lang`, `<dbname>`). Languages are
built one after another into ROOT/xx with `mrc.build_wiki_mrc` — a finished one is skipped, an
interrupted one resumed, so rerunning the command continues where it stopped — and
ROOT/manifest.json (`"kind": "languages"`) sums them up per language as the mPMR paper's
Table 4 does (entities, examples), rewritten after every language. Progress and an ETA across
languages (from the input bytes done so far) go to stderr.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from data_prep.format import MANIFEST
from data_prep.shards import WORK, atomic_write_text

ROOT_KIND = "languages"
_NAME_RE = re.compile(r"^([a-z]{2,3}(?:[-_][a-z]+)?)wiki(?:[-_.]|$)|^([a-z]{2,3})$")


def _lang_of(entry: Path) -> str | None:
    from data_prep.wiki import dump_language

    match = _NAME_RE.match(entry.name.lower())
    if match:
        return (match.group(1) or match.group(2)).replace("_", "-")
    try:
        return dump_language(entry)
    except (ValueError, OSError):
        return None


def find_dumps(input_dir: str | Path, langs: str) -> dict[str, Path]:
    """{lang: input file or folder} for `langs` ("all" or "xx,yy") under `input_dir`.

    Raises ValueError (before anything is built) for a missing language, a language found
    twice, or no supported language at all."""
    from data_prep.wordtok import SUPPORTED_LANGS

    root = Path(input_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"--input {root}: with --langs, pass the folder holding one dump "
                                 f"(or WikiExtractor folder) per language")
    found: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        lang = _lang_of(entry)
        if lang in SUPPORTED_LANGS:
            found.setdefault(lang, []).append(entry)
    twice = {lang: paths for lang, paths in found.items() if len(paths) > 1}
    if twice:
        lang, paths = next(iter(twice.items()))
        raise ValueError(f"--input {root}: {lang} has {len(paths)} inputs ({', '.join(p.name for p in paths)}); "
                         f"put a language's dump parts in one folder, e.g. {root / lang}/")
    if langs == "all":
        if not found:
            raise ValueError(f"--input {root}: no dump of a supported language found (names like "
                             f"enwiki-…-pages-articles.xml.bz2 or folders en/; supported: "
                             f"{' '.join(SUPPORTED_LANGS)})")
        return {lang: paths[0] for lang, paths in sorted(found.items())}
    wanted = [code.strip() for code in langs.split(",") if code.strip()]
    unknown = [code for code in wanted if code not in SUPPORTED_LANGS]
    if unknown:
        raise ValueError(f"--langs {','.join(unknown)}: supported are {' '.join(SUPPORTED_LANGS)}")
    missing = [code for code in wanted if code not in found]
    if missing:
        raise ValueError(f"--input {root}: no dump found for {', '.join(missing)} (found: "
                         f"{', '.join(sorted(found)) or 'none'})")
    return {code: found[code][0] for code in wanted}


def _input_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _summary(path: Path, manifest: dict) -> dict:
    counts, reading = manifest.get("counts", {}), manifest.get("reading", {})
    return {"input": str(path), "articles": reading.get("articles", 0),
            "entities": reading.get("entities_selected", 0),
            "examples": counts.get("examples", 0), "answerable": counts.get("answerable", 0),
            "unanswerable": counts.get("unanswerable", 0)}


def _write_root(root: Path, per_lang: dict[str, dict], wanted: list[str]) -> dict:
    totals = {key: sum(s[key] for s in per_lang.values())
              for key in ("articles", "entities", "examples", "answerable", "unanswerable")}
    manifest = {"kind": ROOT_KIND, "complete": sorted(per_lang) == sorted(wanted),
                "languages": per_lang, "total": totals}
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False))
    return manifest


def build_all(input_dir: str | Path, langs: str, tokenizer: str | Path, root: str | Path,
              options: dict, *, workers: int = 1, progress: bool = True,
              force_lang: bool = False) -> dict:
    """Build every language of `langs` under ROOT/xx with `MRCParams(lang=xx, **options)`
    (`min_mentions` None: the per-language default); returns ROOT's manifest."""
    from data_prep.mrc import MRCParams, build_wiki_mrc

    dumps = find_dumps(input_dir, langs)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sizes = {lang: _input_bytes(path) for lang, path in dumps.items()}
    per_lang: dict[str, dict] = {}
    began, bytes_done = time.perf_counter(), 0
    for k, (lang, path) in enumerate(dumps.items(), 1):
        out = root / lang
        lang_params = MRCParams(**{**options, "lang": lang})
        t0 = time.perf_counter()
        if (out / MANIFEST).is_file():
            manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            state = "already built"
        else:
            manifest = build_wiki_mrc(path, tokenizer, out, lang_params, workers=workers,
                                      resume=(out / WORK).is_dir(), progress=progress,
                                      force_lang=force_lang)
            state = f"built in {time.perf_counter() - t0:.0f} s"
            bytes_done += sizes[lang]
        per_lang[lang] = _summary(path, manifest)
        _write_root(root, per_lang, list(dumps))
        elapsed = time.perf_counter() - began
        left = sum(sizes[l] for l in list(dumps)[k:])
        eta = f"{left * elapsed / bytes_done / 60:.0f} min" if bytes_done else "unknown"
        print(f"[{k}/{len(dumps)}] {lang}: {state}, {per_lang[lang]['examples']} examples; "
              f"ETA for the other {len(dumps) - k} languages: {eta}", file=sys.stderr, flush=True)
    return _write_root(root, per_lang, list(dumps))
