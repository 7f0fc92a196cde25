"""Phase 2 of the mPMR build: the index the example builder reads, over an `ArticleStore`.

Everything per link lives in files next to the store and is computed with numpy: link targets
are resolved through the redirects by hash (`wiki_store.title_hash`), and the resolved links
are sorted by entity once, so that an entity's mentions, anchors and surface forms are one
contiguous slice. Per article the index holds only offsets and a count; texts, word spans and
links are read on demand (`Index.texts[i]`, `.words[i]`, `.links[i]`, small LRU caches).
`word_counts` / `doc_counts` (which title words name an entity, see `mrc.name_parts`) are
counted in a worker pool over article ranges. The result equals, value for value, the
in-memory index it replaced (tests/test_data_pinned.py pins the output bytes).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.wiki_store import ArticleStore, hashes, title_hash, write_store

_CHUNK_ARTICLES = 20_000  # articles per vectorised step and per counting task
_CACHE = 1024  # articles whose text / words / links a process keeps


class _Column:
    """A flat binary array on disk, read by positional reads (no mapping: resident memory
    stays what the caller keeps)."""

    def __init__(self, path: Path, dtype: str):
        self.path, self.dtype = path, np.dtype(dtype)
        self._fd, self._pid = None, None

    def __getitem__(self, sl: slice) -> np.ndarray:
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        size = self.dtype.itemsize
        data = os.pread(self._fd, (sl.stop - sl.start) * size, sl.start * size)
        return np.frombuffer(data, self.dtype)


class _View:
    """`view[i]` → `get(i)` (cached), `len(view)`: the sequences the example builder indexes."""

    def __init__(self, get, n: int, cache: int = _CACHE):
        self._get = functools.lru_cache(maxsize=cache)(get) if cache else get
        self._n = n

    def __getitem__(self, i):
        return self._get(int(i))

    def __len__(self) -> int:
        return self._n


class _Mapping(_View):
    """A `_View` keyed by entity that also answers `.get(entity, default)`."""

    def get(self, i, default=None):
        value = self[i]
        return value if len(value) else default


@dataclass
class Index:
    """Everything the example builder reads: the corpus plus per-entity statistics."""

    lang: str
    store: ArticleStore
    titles: list[str]
    texts: _View  # per article: text
    words: _View  # per article: [n_words, 2] char spans (int32), cut at link edges
    links: _View  # per article: [(start, end, entity article index)] of resolved links
    mentions: _Mapping  # entity -> [(article, link index)], self-links excluded
    surface_forms: _Mapping  # entity -> names to mask / avoid, longest first
    linked_entities: _View  # per article: frozenset of entities it links to
    mention_counts: np.ndarray  # per article: inbound links from other articles
    title_parts: dict[int, list[str]] = field(default_factory=dict)  # entity -> candidate words
    word_counts: Counter = field(default_factory=Counter)  # candidate words and lower-case forms
    doc_counts: Counter = field(default_factory=Counter)  # articles holding each candidate word
    names_of: dict[str, set[int]] = field(default_factory=dict)  # candidate -> articles it names
    stats: Counter = field(default_factory=Counter)
    _keep: object = None  # temporary folders that live as long as the index


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, queries: np.ndarray,
            missing: np.ndarray | int) -> np.ndarray:
    """values[k] where sorted_keys[k] == query, else `missing` (scalar or per query)."""
    if not len(sorted_keys):
        return np.broadcast_to(missing, queries.shape).copy()
    pos = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    found = sorted_keys[pos] == queries
    return np.where(found, values[pos], missing)


def split_spans(words: np.ndarray, cuts: list[int]) -> np.ndarray:
    """`mrc.split_at` on an [n, 2] array: words cut at every offset strictly inside them."""
    words = np.asarray(words, dtype=np.int32).reshape(-1, 2)
    if not cuts or not len(words):
        return words.copy()
    at = np.asarray(cuts, dtype=np.int64)
    first = np.searchsorted(at, words[:, 0], side="right")  # first cut after the start
    last = np.searchsorted(at, words[:, 1], side="left")  # first cut at or after the end
    split = np.flatnonzero(last > first)
    if not len(split):
        return words.copy()
    pieces, prev = [], 0
    for i in split.tolist():
        edges = [int(words[i, 0]), *at[first[i]:last[i]].tolist(), int(words[i, 1])]
        pieces += [words[prev:i], np.asarray(list(zip(edges[:-1], edges[1:])), np.int32)]
        prev = i + 1
    pieces.append(words[prev:])
    return np.concatenate(pieces)


def build_index(source, lang: str, *, workers: int = 1, progress: bool = False,
                min_mentions: int = 1, work_dir: str | Path | None = None) -> Index:
    """Index an `ArticleStore` (or a `WikiCorpus`, stored to a temporary folder first).

    Title parts, word and name counts are gathered for the entities with at least
    `min_mentions` inbound mentions only (the ones examples are built for); `select_entities`
    with a larger minimum reads the same values.
    """
    from data_prep.mrc import strip_parenthetical, title_words
    from data_prep.wiki import WikiCorpus

    corpus_dir = None
    if isinstance(source, WikiCorpus):
        corpus_dir = tempfile.TemporaryDirectory(prefix="xpretrain-index-",
                                                 ignore_cleanup_errors=True)
        write_store(source, lang, Path(corpus_dir.name) / "store")
        source = ArticleStore(Path(corpus_dir.name) / "store")
    store: ArticleStore = source
    # the index files of this process (parts of one build index at once in the same .work/);
    # removed with the Index (forked workers exit without running finalizers)
    Path(work_dir or store.folder).mkdir(parents=True, exist_ok=True)
    index_dir = tempfile.TemporaryDirectory(dir=work_dir or store.folder, prefix="index-",
                                            ignore_cleanup_errors=True)
    work = Path(index_dir.name)
    n, titles = len(store), store.titles
    stats: Counter = Counter()

    # titles and redirects by hash
    title_h = hashes(titles)
    title_order = np.argsort(title_h, kind="stable")
    title_sorted = title_h[title_order]
    if len(title_sorted) > 1 and (title_sorted[1:] == title_sorted[:-1]).any():
        first = int(np.flatnonzero(title_sorted[1:] == title_sorted[:-1])[0])
        raise ValueError(f"two titles share a 64-bit hash ({titles[title_order[first]]!r}, "
                         f"{titles[title_order[first + 1]]!r}); report this")
    redirects = store.redirects
    red_src = hashes(redirects.keys())
    red_tgt_by_source = hashes(redirects.values())  # in the redirects' order
    red_order = np.argsort(red_src, kind="stable")
    red_src, red_tgt = red_src[red_order], red_tgt_by_source[red_order]

    def resolve(h: np.ndarray) -> np.ndarray:
        return _lookup(red_src, red_tgt, h, h)

    def entity_of(h: np.ndarray) -> np.ndarray:
        return _lookup(title_sorted, title_order.astype(np.int32), h, np.int32(-1)).astype(np.int32)

    # resolve every link; the resolved ones' columns go to disk in link order
    entity_col = _Column(work / "entity.bin", "<i4")
    kinds = {"entity": "<i4", "link": "<i8", "article": "<i4", "rank": "<i4", "anchor": "<i8"}
    unsorted = {name: work / f"resolved_{name}.bin" for name in kinds}
    links_per_entity = np.zeros(n, np.int64)
    mention_counts = np.zeros(n, np.int64)  # inbound links from other articles
    files = {name: open(path, "wb") for name, path in unsorted.items()}
    try:
        with open(entity_col.path, "wb") as out:
            for a0 in range(0, n, _CHUNK_ARTICLES):
                a1 = min(n, a0 + _CHUNK_ARTICLES)
                l0, l1 = int(store.links_off[a0]), int(store.links_off[a1])
                ent = entity_of(resolve(store.column("target", l0, l1)))
                ent.astype("<i4").tofile(out)
                kept = ent >= 0
                article = np.repeat(np.arange(a0, a1, dtype=np.int32),
                                    np.diff(store.links_off[a0:a1 + 1]))
                kept_before = np.concatenate([[0], np.cumsum(kept)])  # kept links before each
                first_link = (store.links_off[a0:a1] - l0)[article - a0]
                rank = kept_before[:-1] - kept_before[first_link]
                chunk = {"entity": ent, "link": np.arange(l0, l1), "article": article,
                         "rank": rank, "anchor": store.column("anchor", l0, l1)}
                for name, values in chunk.items():
                    values[kept].astype(kinds[name]).tofile(files[name])
                links_per_entity += np.bincount(ent[kept], minlength=n)
                other = kept & (ent != article)
                mention_counts += np.bincount(ent[other], minlength=n)
                stats["links_resolved"] += int(kept.sum())
                if not kept.all():  # the key only where a link was lost, as before
                    stats["link_target_missing"] += int((~kept).sum())
    finally:
        for handle in files.values():
            handle.close()

    # sort the resolved links by entity (stable: each entity's links stay in link order), one
    # column at a time, so that at most the order and one column are in memory (16 B a link)
    order = np.argsort(np.fromfile(unsorted["entity"], "<i4"), kind="stable")
    entity_off = np.concatenate([[0], np.cumsum(links_per_entity)]).astype(np.int64)
    columns = {}
    for name in ("link", "article", "rank", "anchor"):
        columns[name] = _Column(work / f"by_entity_{name}.bin", kinds[name])
        column = np.fromfile(unsorted[name], kinds[name])
        with open(columns[name].path, "wb") as out:
            for j in range(0, len(order), 1 << 20):
                column[order[j:j + (1 << 20)]].tofile(out)
        del column
    del order
    for path in unsorted.values():
        path.unlink()

    # redirect sources per entity (surface forms)
    redirect_sources: dict[int, list[str]] = {}
    red_entity = entity_of(resolve(red_tgt_by_source))  # per redirect, in the redirects' order
    for source, idx in zip(redirects.keys(), red_entity.tolist()):
        if idx >= 0:
            redirect_sources.setdefault(idx, []).append(source)

    def entity_slice(e: int) -> slice:
        return slice(int(entity_off[e]), int(entity_off[e + 1]))

    def links_of(art: int) -> list[tuple[int, int, int]]:
        l0, l1 = int(store.links_off[art]), int(store.links_off[art + 1])
        if l0 == l1:
            return []
        ent = entity_col[slice(l0, l1)]
        spans = store.link_spans(l0, l1)
        return [(s, e, t) for (s, e), t in zip(spans.tolist(), ent.tolist()) if t >= 0]

    links_view = _View(links_of, n)

    def words_of(art: int) -> np.ndarray:
        cuts = sorted({c for s, e, _ in links_view[art] for c in (s, e)})
        return split_spans(store.raw_words(art), cuts)

    def mentions_of(e: int) -> list[tuple[int, int]]:
        sl = entity_slice(e)
        if sl.start == sl.stop:
            return []
        arts, ranks = columns["article"][sl].tolist(), columns["rank"][sl].tolist()
        return [(a, r) for a, r in zip(arts, ranks) if a != e]

    def forms_of(e: int) -> list[str]:
        sl = entity_slice(e)
        forms = {titles[e], strip_parenthetical(titles[e])}
        if sl.start != sl.stop:
            _, first = np.unique(columns["anchor"][sl], return_index=True)
            link_ids = columns["link"][sl]
            forms.update(store.anchor_text(int(link_ids[i])) for i in first)
        for source in redirect_sources.get(e, ()):
            forms.update({source, strip_parenthetical(source)})
        return sorted((f for f in forms if f.strip()), key=lambda f: (-len(f), f))

    index = Index(
        lang=lang, store=store, titles=titles, texts=_View(store.text, n), words=_View(words_of, n),
        links=links_view, mentions=_Mapping(mentions_of, n, cache=256),
        surface_forms=_Mapping(forms_of, n, cache=256),
        linked_entities=_View(lambda art: frozenset(t for _, _, t in links_view[art]), n),
        mention_counts=mention_counts, stats=stats, _keep=(corpus_dir, index_dir),
    )

    # title words of the entities examples may be built for, and how the corpus uses them
    wanted = np.flatnonzero(mention_counts >= max(1, min_mentions))
    index.title_parts = {int(e): parts for e in wanted if (parts := title_words(titles[e], lang))}
    vocab = {w for parts in index.title_parts.values() for w in parts}
    if not vocab:
        return index
    counted = frozenset(vocab | {w.lower() for w in vocab})
    index.word_counts, index.doc_counts = _count_words(index, counted, vocab, workers, progress)
    index.names_of = _names_of(index, vocab, resolve, entity_of, red_entity)
    return index


# ---------------------------------------------------------------- word counts (worker pool)

_STATE: dict = {}  # set before forking (copy-on-write)


def _count_range(bounds: tuple[int, int]) -> tuple[Counter, Counter]:
    index, counted, vocab = _STATE["index"], _STATE["counted"], _STATE["vocab"]
    word_counts: Counter = Counter()
    doc_counts: Counter = Counter()
    for art in range(*bounds):
        text = index.store.text(art)
        counts = Counter(w for w in (text[s:e] for s, e in index.words[art].tolist())
                         if w in counted)
        word_counts.update(counts)
        doc_counts.update(w for w in counts if w in vocab)
    return word_counts, doc_counts


def _count_words(index: Index, counted: frozenset, vocab: set, workers: int,
                 progress: bool) -> tuple[Counter, Counter]:
    """How often each counted word occurs (as a word cut at link edges) and in how many articles."""
    n = len(index.titles)
    step = max(1, min(_CHUNK_ARTICLES, -(-n // (workers * 8))))
    ranges = [(a, min(n, a + step)) for a in range(0, n, step)]
    word_counts: Counter = Counter()
    doc_counts: Counter = Counter()
    _STATE.update(index=index, counted=counted, vocab=vocab)
    try:
        bar = tqdm(total=n, desc=f"{index.lang}: word counts", disable=not progress)
        if workers > 1 and len(ranges) > 1:
            with mp.get_context("fork").Pool(min(workers, len(ranges))) as pool:
                for (wc, dc), (a, b) in zip(pool.imap(_count_range, ranges), ranges):
                    word_counts.update(wc)
                    doc_counts.update(dc)
                    bar.update(b - a)
        else:
            for a, b in ranges:
                wc, dc = _count_range((a, b))
                word_counts.update(wc)
                doc_counts.update(dc)
                bar.update(b - a)
        bar.close()
    finally:
        _STATE.clear()
    return word_counts, doc_counts


def _names_of(index: Index, vocab: set[str], resolve, entity_of,
              red_entity: np.ndarray) -> dict[str, set[int]]:
    """For each word of `vocab` that is itself a name — a title, title without parenthetical,
    redirect, link target (as written or redirect-resolved) or anchor text — the articles it
    names (-1: a page outside the corpus). Links are matched by hash, in vectorised chunks."""
    from data_prep.mrc import strip_parenthetical

    store = index.store
    names_of: dict[str, set[int]] = {}

    def name(text: str, idx: int) -> None:
        if text in vocab:
            names_of.setdefault(text, set()).add(idx)

    for i, title in enumerate(index.titles):
        name(title, i)
        name(strip_parenthetical(title), i)
    by_hash = {title_hash(w): w for w in vocab}
    vocab_h = np.asarray(sorted(by_hash), dtype=np.int64)
    n = len(index.titles)
    for a0 in range(0, n, _CHUNK_ARTICLES):
        l0, l1 = int(store.links_off[a0]), int(store.links_off[min(n, a0 + _CHUNK_ARTICLES)])
        if l0 == l1:
            continue
        raw = store.column("target", l0, l1)
        target = resolve(raw)
        idx = entity_of(target)
        for h in (raw, target, store.column("anchor", l0, l1)):
            hit = np.isin(h, vocab_h)
            if hit.any():
                for hh, ii in set(zip(h[hit].tolist(), idx[hit].tolist())):
                    names_of.setdefault(by_hash[hh], set()).add(ii)
    for (source, _), idx in zip(store.redirects.items(), red_entity.tolist()):
        name(source, idx)
        name(strip_parenthetical(source), idx)
    return names_of
