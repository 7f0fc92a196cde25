"""The cleaned articles of one language on disk, for the MRC build at Wikipedia scale.

`write_store` streams a dump (or WikiExtractor output, or an in-memory `WikiCorpus`) through
`data_prep.wiki.WikiReader` into flat files; `ArticleStore` reads one article at a time with
`os.pread`. Nothing per article or per link stays in Python objects except the titles, so the
resident memory of a build grows with the number of articles, not with their text (issue 12).

Layout of a store folder (all little-endian, offsets start with 0 and have one entry more
than the rows they cut):

    text.bin      UTF-8 texts, back to back          text_off.bin    int64 byte offsets
    words.bin     int32 [start, end) char spans      words_off.bin   int64 span offsets
                  (`wordtok.word_spans`, not yet cut at link edges)
    links.bin     int32 [start, end) anchor spans    links_off.bin   int64 link offsets
    target.bin    int64 hash of each link's target (`title_hash`, not redirect-resolved)
    anchor.bin    int64 hash of each anchor's text
    anchors.bin   UTF-8 anchor texts                 anchors_off.bin int64 byte offsets per link
    titles.jsonl  one JSON string per article;  redirects.json  source -> final target
    meta.json     counts, skips, text bytes — written last: a store without it is unfinished

Word tokenization runs in the reader's workers, next to the wikitext cleaning, so the text is
read once. Titles are compared by a 64-bit BLAKE2b hash: a collision between two titles is
detected and refused; one between a link target and a title has probability ~ links × titles
/ 2^64 (about 1e-5 for English Wikipedia).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

META = "meta.json"
_INT64 = np.dtype("<i8")
_INT32 = np.dtype("<i4")


def title_hash(text: str) -> int:
    """A stable signed 64-bit hash of a string (titles, link targets, anchors, words)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def hashes(texts) -> np.ndarray:
    return np.fromiter((title_hash(t) for t in texts), dtype=np.int64)


@dataclass
class PackedArticles:
    """The articles of one batch as flat arrays (built in a reader worker, see `pack_articles`)."""

    titles: list[str]
    text_lens: np.ndarray  # int64 bytes per article
    text: bytes
    word_counts: np.ndarray  # int64 spans per article
    words: np.ndarray  # int32 [n_words, 2]
    link_counts: np.ndarray  # int64 links per article
    links: np.ndarray  # int32 [n_links, 2]
    target: np.ndarray  # int64 per link
    anchor: np.ndarray  # int64 per link
    anchor_lens: np.ndarray  # int64 bytes per link
    anchors: bytes


def pack_articles(articles, lang: str) -> PackedArticles:
    """Word spans, link arrays and hashes of a batch's articles (runs in a reader worker)."""
    from data_prep.wordtok import word_spans

    texts = [a.text.encode("utf-8", "surrogatepass") for a in articles]
    spans = [np.asarray(word_spans(a.text, lang), dtype=np.int32).reshape(-1, 2) for a in articles]
    links = [(l.start, l.end) for a in articles for l in a.links]
    surfaces = [a.text[l.start:l.end] for a in articles for l in a.links]
    encoded = [s.encode("utf-8", "surrogatepass") for s in surfaces]
    return PackedArticles(
        titles=[a.title for a in articles],
        text_lens=np.asarray([len(t) for t in texts], dtype=np.int64),
        text=b"".join(texts),
        word_counts=np.asarray([len(s) for s in spans], dtype=np.int64),
        words=np.concatenate(spans) if spans else np.zeros((0, 2), np.int32),
        link_counts=np.asarray([len(a.links) for a in articles], dtype=np.int64),
        links=np.asarray(links, dtype=np.int32).reshape(-1, 2),
        target=hashes(l.target for a in articles for l in a.links),
        anchor=hashes(surfaces),
        anchor_lens=np.asarray([len(e) for e in encoded], dtype=np.int64),
        anchors=b"".join(encoded),
    )


def _select(packed: PackedArticles, keep: list[bool]) -> PackedArticles:
    """The kept articles of a batch (duplicates dropped by the reader)."""
    keep_a = np.asarray(keep, dtype=bool)
    if keep_a.all():
        return packed

    def rows(counts: np.ndarray) -> np.ndarray:  # row mask for the kept articles' rows
        return np.repeat(keep_a, counts)

    link_rows = rows(packed.link_counts)
    text = np.frombuffer(packed.text, np.uint8)[rows(packed.text_lens)].tobytes()
    anchors = np.frombuffer(packed.anchors, np.uint8)[np.repeat(link_rows, packed.anchor_lens)]
    return PackedArticles(
        [t for t, k in zip(packed.titles, keep) if k], packed.text_lens[keep_a], text,
        packed.word_counts[keep_a], packed.words[rows(packed.word_counts)],
        packed.link_counts[keep_a], packed.links[link_rows], packed.target[link_rows],
        packed.anchor[link_rows], packed.anchor_lens[link_rows], anchors.tobytes())


class _Writer:
    """Appends packed batches to the store files, in order."""

    COLUMNS = ("text", "words", "links", "target", "anchor", "anchors")
    OFFSETS = ("text_off", "words_off", "links_off", "anchors_off")

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META).unlink(missing_ok=True)
        self.files = {name: open(folder / f"{name}.bin", "wb") for name in self.COLUMNS + self.OFFSETS}
        self.ends = dict.fromkeys(self.OFFSETS, 0)
        for name in self.OFFSETS:
            np.zeros(1, _INT64).tofile(self.files[name])
        self.titles = open(folder / "titles.jsonl", "w", encoding="utf-8")
        self.n_articles = self.n_links = self.text_bytes = 0

    def _offsets(self, name: str, lengths: np.ndarray) -> None:
        ends = self.ends[name] + np.cumsum(lengths, dtype=np.int64)
        ends.astype(_INT64).tofile(self.files[name])
        if len(ends):
            self.ends[name] = int(ends[-1])

    def add(self, packed: PackedArticles) -> None:
        f = self.files
        f["text"].write(packed.text)
        packed.words.astype(_INT32).tofile(f["words"])
        packed.links.astype(_INT32).tofile(f["links"])
        packed.target.astype(_INT64).tofile(f["target"])
        packed.anchor.astype(_INT64).tofile(f["anchor"])
        f["anchors"].write(packed.anchors)
        self._offsets("text_off", packed.text_lens)
        self._offsets("words_off", packed.word_counts)
        self._offsets("links_off", packed.link_counts)
        self._offsets("anchors_off", packed.anchor_lens)
        for title in packed.titles:
            self.titles.write(json.dumps(title, ensure_ascii=False) + "\n")
        self.n_articles += len(packed.titles)
        self.n_links += len(packed.target)
        self.text_bytes += len(packed.text)

    def close(self, redirects: dict[str, str], skipped: Counter, lang: str) -> dict:
        for handle in self.files.values():
            handle.close()
        self.titles.close()
        tmp = self.folder / "redirects.json.tmp"
        tmp.write_text(json.dumps(redirects, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.folder / "redirects.json")
        meta = {"lang": lang, "articles": self.n_articles, "links": self.n_links,
                "redirects": len(redirects), "text_bytes": self.text_bytes,
                "skipped": {k: int(v) for k, v in skipped.items()}}
        tmp = self.folder / (META + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp, self.folder / META)
        return meta


def write_store(source, lang: str, folder: str | Path, *, workers: int = 1,
                min_article_chars: int = 200, max_article_chars: int = 1_000_000,
                progress: bool = False) -> dict:
    """Read `source` (a dump / WikiExtractor path, or an in-memory `WikiCorpus`) into a store
    at `folder`; returns its meta. Articles, redirects and skip counts are exactly
    `read_wiki`'s."""
    from data_prep.wiki import WikiCorpus, WikiReader

    writer = _Writer(Path(folder))
    if isinstance(source, WikiCorpus):
        writer.add(pack_articles(source.articles, lang))
        return writer.close(source.redirects, source.skipped, lang)
    reader = WikiReader(source, lang, workers=workers, min_article_chars=min_article_chars,
                        max_article_chars=max_article_chars, progress=progress, pack=pack_articles)
    for cleaned, keep in reader:
        writer.add(_select(cleaned.payload, keep))
    redirects, skipped = reader.finish()
    return writer.close(redirects, skipped, lang)


def _part_file(parts_dir: Path, part: tuple[int, int]) -> Path:
    return parts_dir / f"{part[0]}-of-{part[1]}.pickle"


def write_store_part(source, lang: str, parts_dir: str | Path, part: tuple[int, int], *,
                     workers: int = 1, min_article_chars: int = 200,
                     max_article_chars: int = 1_000_000, progress: bool = False) -> Path:
    """Clean the batches b % N == i of `source` (every part cuts the whole input into the same
    batches) and save them, undecided, for `merge_store_parts`. Our own intermediate file, read
    back only by this module: a pickle stream of the batches, then the page cutter's counts
    (part 0 only, so that they are counted once)."""
    from data_prep.wiki import WikiReader

    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    final = _part_file(parts_dir, part)
    reader = WikiReader(source, lang, workers=workers, min_article_chars=min_article_chars,
                        max_article_chars=max_article_chars, progress=progress,
                        pack=pack_articles, part=part)
    tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        for cleaned in reader.cleaned():
            pickle.dump(cleaned, f, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(reader.reader_skipped if part[0] == 0 else Counter(), f)
    os.replace(tmp, final)
    return final


def missing_parts(parts_dir: str | Path, n_parts: int) -> list[int]:
    return [i for i in range(n_parts) if not _part_file(Path(parts_dir), (i, n_parts)).is_file()]


def merge_store_parts(parts_dir: str | Path, n_parts: int, lang: str, folder: str | Path) -> dict:
    """The store a single `write_store` makes, from the N parts: batches replayed in input
    order through the same keep decisions. Parts may merge at once: the first rename wins."""
    from data_prep.wiki import CleanedBatch, Keeper

    parts_dir, folder = Path(parts_dir), Path(folder)
    missing = missing_parts(parts_dir, n_parts)
    if missing:
        raise FileNotFoundError(f"read parts {missing} of {n_parts} are not finished in {parts_dir}")
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    writer, keeper, cutter = _Writer(tmp), Keeper(), Counter()
    streams = [open(_part_file(parts_dir, (i, n_parts)), "rb") for i in range(n_parts)]
    try:
        done = [False] * n_parts
        seq = 0
        while not all(done):
            i = seq % n_parts
            record = pickle.load(streams[i]) if not done[i] else None
            if isinstance(record, CleanedBatch):
                writer.add(_select(record.payload, keeper.keep(record)))
            elif record is not None:  # the part's trailer: it holds no batch from here on
                cutter.update(record)
                done[i] = True
            seq += 1
    finally:
        for stream in streams:
            stream.close()
    redirects, skipped = keeper.finish(cutter)
    meta = writer.close(redirects, skipped, lang)
    try:
        os.rename(tmp, folder)
    except OSError:  # another part merged first: the same bytes
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


class ArticleStore:
    """Read side of a store: titles and offsets in memory, everything else read on demand.

    Safe to use from forked workers (positional reads share no file offset)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder} holds no finished article store ({META} missing)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with open(self.folder / "titles.jsonl", encoding="utf-8") as f:
            self.titles: list[str] = [json.loads(line) for line in f]
        self.redirects: dict[str, str] = json.loads(
            (self.folder / "redirects.json").read_text(encoding="utf-8"))
        self.skipped = Counter(self.meta["skipped"])
        self.text_off = np.fromfile(self.folder / "text_off.bin", _INT64)
        self.words_off = np.fromfile(self.folder / "words_off.bin", _INT64)
        self.links_off = np.fromfile(self.folder / "links_off.bin", _INT64)
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.titles)

    @property
    def n_links(self) -> int:
        return int(self.links_off[-1])

    def _read(self, name: str, start: int, size: int) -> bytes:
        if self._pid != os.getpid():  # a forked worker: its own descriptors
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.folder / f"{name}.bin", os.O_RDONLY)
        data = os.pread(fd, size, start)
        if len(data) != size:
            raise OSError(f"{self.folder}/{name}.bin is shorter than its offsets say")
        return data

    def _rows(self, name: str, dtype: np.dtype, first: int, last: int, width: int = 1) -> np.ndarray:
        size = dtype.itemsize * width
        return np.frombuffer(self._read(name, first * size, (last - first) * size), dtype).reshape(
            (-1, width) if width > 1 else (-1,))

    def text(self, i: int) -> str:
        start, end = int(self.text_off[i]), int(self.text_off[i + 1])
        return self._read("text", start, end - start).decode("utf-8", "surrogatepass")

    def raw_words(self, i: int) -> np.ndarray:
        return self._rows("words", _INT32, int(self.words_off[i]), int(self.words_off[i + 1]), 2)

    def link_spans(self, first: int, last: int) -> np.ndarray:
        """[start, end) char spans of links first..last-1 (global link numbers)."""
        return self._rows("links", _INT32, first, last, 2)

    def column(self, name: str, first: int, last: int) -> np.ndarray:
        """Per-link int64 column ("target" or "anchor") for links first..last-1."""
        return self._rows(name, _INT64, first, last)

    def anchor_text(self, link: int) -> str:
        start, end = np.frombuffer(self._read("anchors_off", link * 8, 16), _INT64)
        return self._read("anchors", int(start), int(end - start)).decode("utf-8", "surrogatepass")
