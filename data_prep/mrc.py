"""Wikipedia hyperlinks → MRC examples for mPMR (`python -m data_prep wiki-mrc`).

Definition article → query, mention article → context, anchor → answer (DESIGN.md "mPMR data").
The build has three phases:

1. read the dump or WikiExtractor JSON (`data_prep.wiki`) into an on-disk article store
   (`data_prep.wiki_store`, `OUT/.work/store`), so that a resumed build never re-parses the
   dump and no article stays in memory;
2. index (`data_prep.mrc_index`): redirect-resolved link targets,
   surface forms and mentions per entity, and the corpus counts that decide which words of a
   title name the entity on their own (`name_parts`) — cheap and recomputed on resume;
3. per unit of entities (sorted by title; each entity's randomness seeded from
   (seed, entity title)): answerable + unanswerable examples, subword-encoded
   (`data_prep.encode`), written as one shard (`data_prep.shards`) with the examples' entity
   groups. Output is identical for any worker count, scheduling and hash seed.

Never imports torch.distributed or DeepSpeed.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import importlib
import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import regex

from data_prep.encode import encode_examples
from data_prep.mrc_index import Index, build_index  # noqa: F401 -- build_index is part of this API
from data_prep.shards import (WORK, BuildError, ShardedBuild, add_part_options, check_writable,
                              counter_dict, parse_part, run_tasks, write_shard)
from data_prep.wiki_store import (ArticleStore, merge_store_parts, missing_parts, write_store,
                                  write_store_part)

# Scripts written without spaces between words: a surface form may sit inside a segmenter word.
SPACELESS = {"zh", "ja", "th"}
# Agglutinative scripts where particles attach to the end of a name (서울은): no right boundary.
SUFFIXING = {"ko"}
# Where a name may sit inside a word, a title part is masked only as a whole segmenter word.
WORD_ALIGNED = SPACELESS | SUFFIXING
# Arabic writes the conjunctions/prepositions و ف ب ك ل and the article ال onto the next word
# (وعطارد = "and Mercury"): a name may follow them inside one whitespace word.
PROCLITICS = {"ar": r"(?:[وف]?(?:[بكل]|ال|لل|بال|كال)?)"}
# A word character in any script: letters, combining marks (Devanagari vowel signs are marks,
# not \w), digits. Names must not continue into one of these on either side.
WORD_CHAR = r"[\p{L}\p{M}\p{N}_]"
PAREN_RE = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")
# Words of a multi-word title that may name the entity alone ("Einstein"): see name_parts().
LOWER_CASE_SHARE = 0.2  # a word written in lower case this often is a common word
DOC_RATIO = 2  # caseless scripts: used in more articles than this x those linking to the entity
SELF_USES = 2  # standalone uses in the entity's own article that show a part names it


@dataclass
class MRCParams:
    """Build parameters; all of them are recorded in the manifest and checked on --resume."""

    lang: str
    min_mentions: int | None = None  # entities with fewer inbound links are dropped (None: 10 en / 5)
    max_mentions: int = 10  # K: answerable examples per entity (and as many unanswerable)
    query_words: int = 50
    context_words: int = 200
    max_query_tokens: int = 128
    max_seq_len: int = 512
    min_article_chars: int = 200
    max_article_chars: int = 1_000_000  # longer pages (raw text) are skipped as huge_article
    seed: int = 0
    entities_per_unit: int = 64

    def __post_init__(self):
        if self.min_mentions is None:
            self.min_mentions = 10 if self.lang == "en" else 5
        for name in ("min_mentions", "max_mentions", "query_words", "context_words",
                     "max_query_tokens", "entities_per_unit", "max_article_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.max_seq_len < self.max_query_tokens + 8:
            raise ValueError("--max-seq-len must exceed --max-query-tokens by at least 8")


@dataclass
class RawExample:
    """Text-level MRC example before subword encoding."""

    query_parts: list[str | None]  # query text with None where one mask token goes
    context: str
    answers: list[tuple[int, int]]  # char spans in `context`, end exclusive
    answerable: bool

    def query(self, mask: str = "<mask>") -> str:
        return "".join(mask if part is None else part for part in self.query_parts)


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from values, independent of PYTHONHASHSEED."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def strip_parenthetical(title: str) -> str:
    return PAREN_RE.sub("", title).strip()


@functools.lru_cache(maxsize=None)
def stop_words(lang: str) -> frozenset[str]:
    """spaCy's stop-word list for `lang`, lower-cased (empty where spaCy has none: sw)."""
    try:
        module = importlib.import_module(f"spacy.lang.{lang}.stop_words")
    except ImportError:
        return frozenset()
    return frozenset(w.lower() for w in module.STOP_WORDS)


def title_words(title: str, lang: str, *, single: bool = False) -> list[str]:
    """Words of a multi-word title (parenthetical dropped) that could name the entity alone.

    Words are `word_spans` of the title — in zh/ja/th the segmenter's words ("阿尔伯特·爱因斯坦"
    → 阿尔伯特, 爱因斯坦). A title of one word has none (unless `single`); a candidate has two
    letters or more and is not a stop word. Whether one is masked is `name_parts`' decision.
    """
    from data_prep.wordtok import words

    named = [w for w in words(strip_parenthetical(title), lang) if regex.search(WORD_CHAR, w)]
    if len(named) < 2 and not single:
        return []
    out = []
    for w in named:
        if sum(ch.isalpha() for ch in w) >= 2 and w.lower() not in stop_words(lang) and w not in out:
            out.append(w)
    return out


def split_at(words: list[tuple[int, int]], cuts: list[int]) -> list[tuple[int, int]]:
    """Split word spans at the given char offsets (link boundaries) so anchors are whole words."""
    out: list[tuple[int, int]] = []
    for start, end in words:
        i = bisect.bisect_right(cuts, start)
        while i < len(cuts) and cuts[i] < end:
            out.append((start, cuts[i]))
            start = cuts[i]
            i += 1
        out.append((start, end))
    return out


def surface_regex(forms: list[str], lang: str, *, ignore_case: bool) -> regex.Pattern | None:
    """Whole-word matcher for any of `forms` (longest first), respecting the script's word rules.

    The matched name is the group "name"; the whole match may also hold a proclitic (Arabic).
    """
    forms = [f for f in forms if f.strip()]
    if not forms:
        return None
    body = "|".join(regex.escape(f) for f in sorted(set(forms), key=lambda f: (-len(f), f)))
    left = "" if lang in SPACELESS else f"(?<!{WORD_CHAR})" + PROCLITICS.get(lang, "")
    right = "" if lang in SPACELESS or lang in SUFFIXING else f"(?!{WORD_CHAR})"
    flags = regex.IGNORECASE if ignore_case else 0
    return regex.compile(f"{left}(?P<name>{body}){right}", flags)


# ---------------------------------------------------------------- phase 2: index


def select_entities(index: Index, params: MRCParams) -> list[int]:
    """Entities with enough inbound mentions, ordered by title (the unit order)."""
    counts = index.mention_counts
    mentioned = np.flatnonzero(counts > 0)
    kept = mentioned[counts[mentioned] >= params.min_mentions]
    index.stats["entities_below_min_mentions"] = len(mentioned) - len(kept)
    return sorted(kept.tolist(), key=lambda e: index.titles[e])


# ---------------------------------------------------------------- phase 3: examples


def names_regex(index: Index, entity: int) -> regex.Pattern:
    """Any surface form of `entity`, whole words, case-insensitive (masking and avoiding)."""
    return surface_regex(index.surface_forms[entity], index.lang, ignore_case=True)


def _is_word(words: np.ndarray, start: int, end: int) -> bool:
    """Whether [start, end) begins and ends at word boundaries of `words` ([n, 2] char spans)."""
    i, j = np.searchsorted(words[:, 0], start), np.searchsorted(words[:, 1], end)
    return i < len(words) and j < len(words) and words[i, 0] == start and words[j, 1] == end


def title_part_verdicts(index: Index, entity: int,
                        forms: regex.Pattern | None = None) -> list[tuple[str, str]]:
    """Each candidate word of the entity's title (`title_words`) with the first rule that decides it.

    "lower-case word": cased scripts — not capitalised in the title, or written in lower case in
        at least LOWER_CASE_SHARE of its uses in the corpus ("court", "River", "War");
    "names another article": a title, redirect, link target or anchor of another article or of a
        page outside the corpus ("Apollo" of "Apollo 8", "American" linked to United States);
    "frequent word": caseless scripts, where case cannot tell a name — found in more than
        DOC_RATIO × (articles linking to the entity) + 1 articles ("แม่น้ำ", river);
    "not evidenced": no anchor or redirect of the entity has it as its only candidate word
        ("the Atlantic", "A. Einstein"), and the entity's own article uses it alone (outside a
        whole name; in zh/ja/th/ko as a whole segmenter word) fewer than SELF_USES times;
    "masked": it names the entity on its own ("Einstein" of "Albert Einstein").
    """
    parts = index.title_parts.get(entity, [])
    if not parts:
        return []
    lang, text = index.lang, index.texts[entity]
    forms = forms or names_regex(index, entity)
    whole_names = [m.span() for m in forms.finditer(text)]
    one_word_names = {ws[0] for form in index.surface_forms[entity]
                      if len(ws := title_words(form, lang, single=True)) == 1}
    linking = len({art for art, _ in index.mentions.get(entity, ())})
    verdicts = []
    for part in parts:
        first = next(ch for ch in part if ch.isalpha())
        cased_script = first.lower() != first.upper()
        lower, cased = index.word_counts[part.lower()], index.word_counts[part]
        if cased_script and (not first.isupper() or lower >= LOWER_CASE_SHARE * (lower + cased)):
            verdict = "lower-case word"
        elif index.names_of.get(part, set()) - {entity}:
            verdict = "names another article"
        elif not cased_script and index.doc_counts[part] > DOC_RATIO * linking + 1:
            verdict = "frequent word"
        elif part in one_word_names or \
                _standalone_uses(index, entity, part, whole_names) >= SELF_USES:
            verdict = "masked"
        else:
            verdict = "not evidenced"
        verdicts.append((part, verdict))
    return verdicts


def _standalone_uses(index: Index, entity: int, part: str,
                     whole_names: list[tuple[int, int]]) -> int:
    """Uses of `part` (as written) in the entity's article outside `whole_names`, up to SELF_USES."""
    words, lang = index.words[entity], index.lang
    name_starts = [start for start, _ in whole_names]
    uses = 0
    for m in surface_regex([part], lang, ignore_case=False).finditer(index.texts[entity]):
        start, end = m.span("name")
        i = bisect.bisect_left(name_starts, end) - 1
        inside_name = i >= 0 and whole_names[i][1] > start
        if inside_name or (lang in WORD_ALIGNED and not _is_word(words, start, end)):
            continue
        uses += 1
        if uses == SELF_USES:
            break
    return uses


def name_parts(index: Index, entity: int, forms: regex.Pattern | None = None) -> list[str]:
    """Words of the entity's title that name it on their own and are masked as written."""
    return [part for part, verdict in title_part_verdicts(index, entity, forms)
            if verdict == "masked"]


@dataclass
class EntityNames:
    """What names an entity in text: its surface forms (any case) and title parts (as written)."""

    forms: regex.Pattern
    parts: regex.Pattern | None

    def mentioned_in(self, text: str) -> bool:
        return bool(self.forms.search(text) or (self.parts and self.parts.search(text)))


def entity_names(index: Index, entity: int) -> EntityNames:
    forms = names_regex(index, entity)
    parts = name_parts(index, entity, forms)
    return EntityNames(forms, surface_regex(parts, index.lang, ignore_case=False) if parts else None)


def make_query(index: Index, entity: int, params: MRCParams,
               names: EntityNames | None = None) -> list[str | None] | None:
    """First Q words of the entity's article, every name of it replaced by one mask (None).

    Names: every surface form (any case) and the title words that name the entity alone
    (`name_parts`, as written; in zh/ja/th/ko only where one is a whole segmenter word). They are
    searched a little past word Q so that one cut by the window is still masked.
    """
    all_words = index.words[entity]
    if len(all_words) == 0:
        return None
    words = all_words[: params.query_words]
    text = index.texts[entity]
    region_start = int(words[0, 0])
    search_end = int(all_words[min(len(all_words), params.query_words + 20) - 1, 1])
    names = names or entity_names(index, entity)
    spans = [m.span() for m in names.forms.finditer(text, region_start, search_end)]
    if names.parts is not None:
        spans += [m.span() for m in names.parts.finditer(text, region_start, search_end)
                  if index.lang not in WORD_ALIGNED or _is_word(all_words, *m.span())]
    masked = np.zeros(len(words), dtype=bool)
    for start, end in spans:
        masked |= (words[:, 0] < end) & (words[:, 1] > start)
    if not masked.any():
        return None
    parts: list[str | None] = [""]
    prev_end = region_start
    for i, (start, end) in enumerate(words.tolist()):
        if masked[i]:
            if not (i > 0 and masked[i - 1]):  # a run of masked words becomes one mask
                parts[-1] += text[prev_end:start]
                parts += [None, ""]
        else:
            parts[-1] += text[prev_end:end]
        prev_end = end
    return [p for p in parts if p != ""]


def _window(words: np.ndarray, first: int, n: int) -> tuple[int, int]:
    """Word window [first, first+n) clipped into the article, keeping its length when possible."""
    first = max(0, min(first, len(words) - n))
    return first, min(len(words), first + n)


def answerable_example(index: Index, entity: int, mention: tuple[int, int],
                       query: list[str | None],
                       params: MRCParams, rng: np.random.Generator) -> RawExample:
    art, link_idx = mention
    words, text = index.words[art], index.texts[art]
    start, end, _ = index.links[art][link_idx]
    w_first = int(np.searchsorted(words[:, 0], start, side="left"))
    w_last = int(np.searchsorted(words[:, 1], end, side="left"))
    anchor_words = w_last - w_first + 1
    before = int(rng.integers(0, max(0, params.context_words - anchor_words) + 1))
    lo, hi = _window(words, w_first - before, params.context_words)
    c_start, c_end = int(words[lo, 0]), int(words[hi - 1, 1])
    context = text[c_start:c_end]
    anchor = surface_regex([text[start:end]], index.lang, ignore_case=False)
    answers = sorted({m.span("name") for m in anchor.finditer(context)})
    return RawExample(query, context, answers, True)


def unanswerable_example(index: Index, entity: int, query: list[str | None], params: MRCParams,
                         rng: np.random.Generator, names: EntityNames,
                         tries: int = 30) -> RawExample | None:
    """A window from an article that is not the entity's and never names or links to it."""
    n = len(index.texts)
    for _ in range(tries):
        art = int(rng.integers(0, n))
        if art == entity or entity in index.linked_entities[art] or len(index.words[art]) == 0:
            continue
        if names.mentioned_in(index.texts[art]):
            continue
        words = index.words[art]
        lo, hi = _window(words, int(rng.integers(0, max(1, len(words) - params.context_words + 1))),
                         params.context_words)
        context = index.texts[art][int(words[lo, 0]):int(words[hi - 1, 1])]
        return RawExample(query, context, [], False)
    return None


def entity_examples(index: Index, entity: int, params: MRCParams,
                    stats: Counter) -> list[RawExample]:
    rng = np.random.default_rng(stable_seed(params.seed, index.lang, index.titles[entity]))
    names = entity_names(index, entity)
    query = make_query(index, entity, params, names)
    if query is None:
        stats["query_without_mention"] += 1
        return []
    mentions = index.mentions[entity]
    k = min(params.max_mentions, len(mentions))
    chosen = sorted(rng.choice(len(mentions), size=k, replace=False).tolist())
    examples = [answerable_example(index, entity, mentions[c], query, params, rng) for c in chosen]
    for _ in range(k):
        ex = unanswerable_example(index, entity, query, params, rng, names)
        if ex is None:
            stats["no_unanswerable_context"] += 1
        else:
            examples.append(ex)
    return examples


# ---------------------------------------------------------------- build driver

_STATE: dict = {}  # set before forking unit workers (copy-on-write, never pickled)


def _build_unit(unit: int) -> int:
    """Build and commit one unit of entities; returns 1 (units committed)."""
    index, entities, params = _STATE["index"], _STATE["entities"], _STATE["params"]
    tokenizer, work_dir = _STATE["tokenizer"], _STATE["work_dir"]
    stats: Counter = Counter()
    lo = unit * params.entities_per_unit
    raw: list[RawExample] = []
    group_sizes = []  # examples per entity (one group = one query), in output order
    for entity in entities[lo: lo + params.entities_per_unit]:
        examples = entity_examples(index, entity, params, stats)
        raw.extend(examples)
        if examples:
            group_sizes.append(len(examples))
        stats["entities"] += 1
    encoded = encode_examples(raw, tokenizer, params, stats)
    skipped = {k: stats.pop(k) for k in ("query_without_mention", "no_unanswerable_context")
               if k in stats}
    write_shard(work_dir, unit, (ex.to_arrays() for ex in encoded),
                {"counts": counter_dict(stats), "skipped": skipped}, groups=group_sizes)
    return 1


def _load_or_read_store(build: ShardedBuild, input_path: str, params: MRCParams, workers: int,
                        progress: bool) -> ArticleStore | dict:
    """Phase 1, kept: the cleaned articles are stored once (`data_prep.wiki_store`), so that
    --resume never re-reads the dump. A --part run reads its share of the input batches, and
    merges the store once every part has read (else returns its report: nothing to build yet)."""
    folder = build.work_dir / "store"
    kwargs = dict(workers=workers, progress=progress, min_article_chars=params.min_article_chars,
                  max_article_chars=params.max_article_chars)
    if (folder / "meta.json").is_file():
        return ArticleStore(folder)
    if build.merge_only:
        raise BuildError(f"cannot merge {build.out_dir}: its parts have not read the input yet")
    if build.part is None:
        write_store(input_path, params.lang, folder, **kwargs)
        return ArticleStore(folder)
    parts_dir = build.work_dir / "read-parts"
    if build.part[0] in missing_parts(parts_dir, build.part[1]):
        write_store_part(input_path, params.lang, parts_dir, build.part, **kwargs)
    waiting = missing_parts(parts_dir, build.part[1])
    if waiting:
        i, n = build.part
        return {"out": str(build.out_dir), "part": f"{i}/{n}", "read": True,
                "waiting_for_read_parts": waiting,
                "next": f"rerun every part (--part j/{n}) once all have read; then --merge"}
    merge_store_parts(parts_dir, build.part[1], params.lang, folder)
    return ArticleStore(folder)


def build_wiki_mrc(input_path: str | Path, tokenizer_path: str | Path, out_dir: str | Path,
                   params: MRCParams, *, workers: int = 1, resume: bool = False,
                   progress: bool = True, force_lang: bool = False,
                   part: tuple[int, int] | None = None, merge_only: bool = False) -> dict:
    """Build (or finish, with resume) the MRC dataset of one language; returns the manifest
    (a --part run: its report, see `ShardedBuild.part_report`).

    Inputs that are no dump or WikiExtractor JSON, an unwritable `out_dir`, and (unless
    `force_lang`) a dump whose header names another language than `params.lang` are refused
    before anything is written."""
    from data_prep.tokenizer import load_tokenizer, tokenizer_info

    input_path = Path(input_path)
    if not input_path.exists():
        raise FileNotFoundError(f"--input {input_path} does not exist")
    check_writable(out_dir)
    stored = (Path(out_dir) / WORK / "store" / "meta.json").is_file()
    if not ((resume or part or merge_only) and stored):  # a kept store: the dump is not re-read
        check_dump_language(input_path, params.lang, force_lang)
    tokenizer = load_tokenizer(tokenizer_path)
    tok_info = tokenizer_info(tokenizer)
    build = ShardedBuild(out_dir, "mrc", {**asdict(params), "input": str(input_path.resolve()),
                                          "tokenizer_fingerprint": tok_info["fingerprint"]},
                         resume=resume, part=part, merge_only=merge_only)
    if build.complete:
        print(f"{out_dir}: already complete")
        return json.loads((Path(out_dir) / "manifest.json").read_text())
    try:
        return _build(build, input_path, tokenizer, tok_info, params, workers, progress)
    except BaseException:
        build.discard_unstarted()
        raise


def check_dump_language(input_path: Path, lang: str, force_lang: bool = False) -> None:
    """Raise ValueError when an input is no wiki input, or (unless `force_lang`) when the dump's
    header says another language than `lang`."""
    from data_prep.wiki import dump_language

    dumped = dump_language(input_path)  # sniffs every input file
    if dumped is not None and dumped != lang and not force_lang:
        raise ValueError(f"--lang {lang} contradicts {input_path}: its header says {dumped!r} "
                         f"(xml:lang / <dbname>); pass --lang {dumped}, or --force-lang to read "
                         f"it with the {lang!r} rules anyway")


def _build(build: ShardedBuild, input_path: Path, tokenizer, tok_info: dict, params: MRCParams,
           workers: int, progress: bool) -> dict:
    began = time.perf_counter()
    store = _load_or_read_store(build, str(input_path), params, workers, progress)
    if isinstance(store, dict):  # a part that has read and waits for the others
        return store
    timings = {"parse": time.perf_counter() - began}
    began = time.perf_counter()
    index = build_index(store, params.lang, workers=workers, progress=progress,
                        min_mentions=params.min_mentions, work_dir=build.work_dir)
    entities = select_entities(index, params)
    timings["index"] = time.perf_counter() - began
    n_units = -(-len(entities) // params.entities_per_unit)
    pending = build.pending(n_units)
    _STATE.update(index=index, entities=entities, params=params, tokenizer=tokenizer,
                  work_dir=build.work_dir)
    began = time.perf_counter()
    try:
        run_tasks(pending, _build_unit, workers=workers, total=n_units,
                  committed=n_units - len(pending), desc=f"{params.lang}: units",
                  progress=progress)
    finally:
        _STATE.clear()
    timings["examples"] = time.perf_counter() - began
    if build.part is not None:
        return build.part_report(n_units)
    reading = {"articles": len(store), "redirects": len(store.redirects),
               "entities_selected": len(entities), **counter_dict(index.stats)}
    from data_prep.wordtok import backend_info

    zero = {k: 0 for k in ("examples", "answerable", "unanswerable", "answer_truncated")}
    manifest = build.merge(n_units, {"lang": params.lang, "tokenizer": tok_info, "counts": zero,
                                     "word_tokenizer": backend_info(params.lang),
                                     "reading": reading, "skipped": dict(store.skipped)},
                           profile=lambda merge_s: {
                               "text_bytes": store.meta["text_bytes"],
                               "links": store.meta["links"], "workers": workers,
                               "seconds": {**timings, "merge": merge_s}})
    return manifest


def register(subparsers) -> None:
    p = subparsers.add_parser("wiki-mrc", help="Wikipedia dump or WikiExtractor JSON → MRC data")
    p.add_argument("--input", required=True, help="pages-articles .xml/.xml.bz2, or JSON file/dir")
    p.add_argument("--lang", help="language of --input (or use --langs)")
    p.add_argument("--langs", metavar="all|xx,yy",
                   help="build several languages: --input is a folder with one dump (or "
                        "WikiExtractor folder) per language, --out the root of ROOT/xx folders")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder (ours or xlm-roberta-*)")
    p.add_argument("--out", required=True, help="output folder for this language (with --langs: "
                   "the root folder)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--resume", action="store_true", help="continue an interrupted build")
    add_part_options(p)
    p.add_argument("--force-lang", action="store_true",
                   help="build even if the dump's header names another language than --lang")
    p.add_argument("--no-progress", action="store_true")
    defaults = MRCParams(lang="en")
    p.add_argument("--min-mentions", type=int, default=None, help="default 10 for en, 5 otherwise")
    for name in ("max_mentions", "query_words", "context_words", "max_query_tokens", "max_seq_len",
                 "min_article_chars", "max_article_chars", "seed", "entities_per_unit"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.set_defaults(func=_run)


def _run(args) -> int:
    from data_prep.wordtok import SUPPORTED_LANGS

    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    if (args.lang is None) == (args.langs is None):
        raise ValueError("pass --lang xx for one dump, or --langs all|xx,yy for a folder of dumps")
    if args.langs is not None:
        from data_prep.mrc_langs import build_all

        if args.part or args.merge:
            raise ValueError("--part / --merge split one language (--lang); to spread --langs "
                             "over machines, run one --lang per task (launch_scripts/"
                             "wiki_mrc_slurm.sh)")
        options = {f.name: getattr(args, f.name) for f in fields(MRCParams) if f.name != "lang"}
        MRCParams(lang="en", **options)  # a bad value fails before any language starts
        check_writable(args.out)
        root = build_all(args.input, args.langs, args.tokenizer, args.out, options,
                         workers=args.workers, progress=not args.no_progress,
                         force_lang=args.force_lang)
        print(json.dumps({"out": str(args.out), **root["total"]}))
        return 0
    if args.lang not in SUPPORTED_LANGS:
        raise ValueError(f"--lang {args.lang}: supported are {' '.join(SUPPORTED_LANGS)}")
    params = MRCParams(**{f.name: getattr(args, f.name) for f in fields(MRCParams)})
    manifest = build_wiki_mrc(args.input, args.tokenizer, args.out, params, workers=args.workers,
                              resume=args.resume, progress=not args.no_progress,
                              force_lang=args.force_lang, part=parse_part(args.part),
                              merge_only=args.merge)
    if "part" in manifest:
        print(json.dumps(manifest))
        return 0
    counts = manifest.get("counts", {})
    print(json.dumps({"out": str(args.out), "examples": counts.get("examples", 0),
                      "answerable": counts.get("answerable", 0),
                      "unanswerable": counts.get("unanswerable", 0),
                      "answer_truncated": counts.get("answer_truncated", 0)}))
    return 0
