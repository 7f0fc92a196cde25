"""Word tokenization for the 24 mPMR languages, as character spans of the original text.

The MRC builder needs word boundaries with character offsets: it maps Wikipedia anchors (char
spans) onto word spans and counts words (query = first Q words, context = C words). This module
puts one well-kept segmenter per language behind ``word_spans(text, lang)``:

=========================================  ==================================================
languages                                  backend
=========================================  ==================================================
ar bn de el en es fi fr hi id it nl pl pt  ``spacy.blank(lang).tokenizer`` (rule based)
ru sv te tr
ja                                         SudachiPy + sudachidict_core, split mode A (what
                                           ``spacy.blank("ja")`` does, without spaCy's overhead)
zh                                         jieba, exact mode with HMM (what spaCy's
                                           ``segmenter="jieba"`` does, without its overhead)
th                                         PyThaiNLP ``newmm`` dictionary segmenter
ko                                         MeCab + mecab-ko-dic (python-mecab-ko): morphemes,
                                           so particles and endings are split from stems
vi                                         pyvi CRF word segmenter (what spaCy's vi does)
sw                                         sacremoses ``MosesTokenizer(lang="sw")``
=========================================  ==================================================

Invariants of every result: spans are ``[start, end)`` character offsets, in order,
non-overlapping, non-empty, and ``text[start:end]`` is the surface form. Punctuation tokens are
words. No span contains whitespace, with one documented exception: a Vietnamese word that pyvi
builds from several syllables covers those syllables and the single spaces (U+0020) between them
("Việt Nam" is one word); any other whitespace between syllables splits the word.
Characters a backend drops (e.g. Moses drops ASCII control characters) stay inside the
whitespace-delimited chunk that holds them: when a backend's tokens cannot be aligned with a
line, that line is re-tokenized chunk by chunk and a chunk that still does not align becomes one
word.

This module never lower-cases or normalises text, never downloads anything (pkuseg and spaCy's
model downloads are never touched) and builds no backend at import time: backends are built
lazily, once per process, by ``get_word_tokenizer`` (safe under multiprocessing ``spawn`` and
``fork``; pass ``word_spans`` and a language code to workers, not tokenizer objects).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
from collections.abc import Callable, Iterable, Iterator

Span = tuple[int, int]
WordTokenizer = Callable[[str], list[Span]]

SUPPORTED_LANGS: tuple[str, ...] = (
    "ar", "bn", "de", "el", "en", "es", "fi", "fr", "hi", "id", "it", "ja",
    "ko", "nl", "pl", "pt", "ru", "sv", "sw", "te", "th", "tr", "vi", "zh",
)  # fmt: skip
_SPACY_BLANK_LANGS = frozenset("ar bn de el en es fi fr hi id it nl pl pt ru sv te tr".split())

# Sudachi rejects inputs over 49,149 UTF-8 bytes; 12,000 chars x 4 bytes stays below that.
_SUDACHI_MAX_CHARS = 12_000

_WHITESPACE = re.compile(r"\s")
_NON_WHITESPACE_RUN = re.compile(r"\S+")
_LINE = re.compile(r"[^\r\n]+")


def word_spans(text: str, lang: str) -> list[Span]:
    """Character spans ``[start, end)`` of the words of ``text``, in order.

    No whitespace inside any span (except between the syllables of a Vietnamese word, see the
    module docstring), non-overlapping; ``text[start:end]`` is the surface form. Punctuation
    tokens count as words. Raises ValueError for a language outside ``SUPPORTED_LANGS``.
    """
    tokenize = get_word_tokenizer(lang)
    if not text or text.isspace():
        return []
    return tokenize(text)


def words(text: str, lang: str) -> list[str]:
    """Surface forms of the words of ``text`` (``text[s:e]`` for each span of ``word_spans``)."""
    return [text[start:end] for start, end in word_spans(text, lang)]


@functools.cache
def get_word_tokenizer(lang: str) -> WordTokenizer:
    """The word tokenizer of ``lang`` (text -> list of spans), built once per process.

    Never called at import time; the first call per language loads its dictionaries/models
    (0.1–2.5 s). Raises ValueError for an unknown language and ImportError (with the pip
    command) when the backend package is missing — never a silent switch to another segmenter,
    because that would change the data built from the same dump.
    """
    _check_lang(lang)
    if lang in _SPACY_BLANK_LANGS:
        return _SpacyBlankTokenizer(lang)
    return _BUILDERS[lang]()


def backend_info(lang: str) -> dict[str, str]:
    """Name and version of the backend behind ``lang``, for data manifests (no backend is built)."""
    _check_lang(lang)
    if lang in _SPACY_BLANK_LANGS:
        name, dists = f"spacy.blank({lang}).tokenizer", ("spacy",)
    else:
        name, dists = _BACKEND_DISTS[lang]
    versions = []
    for dist in dists:
        try:
            versions.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return {"backend": name, "versions": " ".join(versions)}


def _check_lang(lang: str) -> None:
    if lang not in SUPPORTED_LANGS:
        raise ValueError(
            f"no word tokenizer for language {lang!r}; supported languages: "
            f"{' '.join(SUPPORTED_LANGS)}"
        )


# --------------------------------------------------------------------------- alignment helpers


def _drop_whitespace(text: str, raw_spans: Iterable[Span]) -> list[Span]:
    """Spans of a backend that covers whitespace too: drop blank/empty spans, split mixed ones.

    (Sudachi emits empty morphemes where its normaliser expands one char, e.g. a final "…".)
    """
    spans: list[Span] = []
    for start, end in raw_spans:
        if start < end:
            _append_split(text, start, end, spans)
    return spans


def _append_split(text: str, start: int, end: int, spans: list[Span]) -> None:
    """Append ``[start, end)``, split at whitespace a backend did not treat as such (U+2028...)."""
    if _WHITESPACE.search(text, start, end) is None:
        spans.append((start, end))
    else:
        spans.extend(m.span() for m in _NON_WHITESPACE_RUN.finditer(text, start, end))


def _align(text: str, tokens: Iterable[str]) -> list[Span] | None:
    """Locate ``tokens`` in ``text`` left to right; only whitespace may lie between them.

    Returns None when a token is not found at the current position or non-whitespace is left
    over (the backend altered or dropped characters): the caller then falls back.
    """
    spans: list[Span] = []
    pos = 0
    for token in tokens:
        if not token or token.isspace():
            continue
        start = text.find(token, pos)
        if start < 0 or (start > pos and not text[pos:start].isspace()):
            return None
        pos = start + len(token)
        _append_split(text, start, pos, spans)
    if pos < len(text) and not text[pos:].isspace():
        return None
    return spans


def _line_pieces(text: str, max_chars: int | None = None) -> Iterator[tuple[int, str]]:
    """(offset, piece) for each non-blank line of ``text``; lines over ``max_chars`` are cut.

    A long line is cut after the last line-level boundary that fits: ``。``/``．``/``！``/``？``,
    then whitespace, then (only for a run with neither) at ``max_chars`` itself.
    """
    for match in _LINE.finditer(text):
        line, offset = match.group(), match.start()
        if line.isspace():
            continue
        while max_chars is not None and len(line) > max_chars:
            window = line[:max_chars]
            cut = max(window.rfind(p) for p in "。．！？") + 1
            if cut <= 0:
                cut = max(window.rfind(" "), window.rfind("\t")) + 1
            if cut <= 0:
                cut = max_chars
            yield offset, line[:cut]
            line, offset = line[cut:], offset + cut
        if line and not line.isspace():
            yield offset, line


def _aligned_per_line(
    text: str,
    tokens_of: Callable[[str], list[str]],
    align: Callable[[str, list[str]], list[Span] | None] = _align,
) -> list[Span]:
    """Tokenize line by line; a line whose tokens do not align is redone chunk by chunk."""
    spans: list[Span] = []
    for offset, line in _line_pieces(text):
        line_spans = align(line, tokens_of(line))
        if line_spans is None:
            line_spans = []
            for chunk in _NON_WHITESPACE_RUN.finditer(line):
                chunk_spans = align(chunk.group(), tokens_of(chunk.group()))
                if chunk_spans is None:
                    line_spans.append(chunk.span())
                else:
                    line_spans.extend((chunk.start() + s, chunk.start() + e) for s, e in chunk_spans)
        spans.extend((offset + s, offset + e) for s, e in line_spans)
    return spans


# --------------------------------------------------------------------------- backends


def _missing(package: str, lang: str) -> ImportError:
    return ImportError(
        f"word tokenization for {lang!r} needs {package}: "
        f"pip install -c requirements/constraints.txt {package}"
    )


class _SpacyBlankTokenizer:
    """spaCy's rule-based tokenizer for ``lang``, with bounded memory.

    spaCy keeps every string it has seen (vocab + tokenizer cache, ~0.5 KB per distinct word);
    over a whole Wikipedia that grows without limit, so the tokenizer is rebuilt once the string
    store passes ``max_strings``. The cache only memoises, so the output does not change.
    """

    def __init__(self, lang: str, max_strings: int = 500_000) -> None:
        try:
            import spacy
        except ImportError:
            raise _missing("spacy", lang) from None
        self._blank = functools.partial(spacy.blank, lang)
        self.max_strings = max_strings
        self.rebuilds = 0
        self._nlp = self._blank()

    def __call__(self, text: str) -> list[Span]:
        nlp = self._nlp
        # spaCy tokens are either all whitespace or contain none.
        spans = [(tok.idx, tok.idx + len(tok)) for tok in nlp.tokenizer(text) if not tok.is_space]
        if len(nlp.vocab.strings) > self.max_strings:
            self._nlp = self._blank()
            self.rebuilds += 1
        return spans


def _build_ja() -> WordTokenizer:
    try:
        from sudachipy import Dictionary, SplitMode
    except ImportError:
        raise _missing("sudachipy sudachidict_core", "ja") from None
    # Mode A = spaCy's default for ja; Morpheme.begin()/end() are offsets into the input str.
    sudachi = Dictionary().tokenizer(mode=SplitMode.A)

    def tokenize(text: str) -> list[Span]:
        spans: list[Span] = []
        for offset, piece in _line_pieces(text, _SUDACHI_MAX_CHARS):
            raw = ((offset + m.begin(), offset + m.end()) for m in sudachi.tokenize(piece))
            spans.extend(_drop_whitespace(text, raw))
        return spans

    return tokenize


def _build_zh() -> WordTokenizer:
    try:
        import jieba
    except ImportError:
        raise _missing("jieba", "zh") from None
    logging.getLogger("jieba").setLevel(logging.WARNING)  # silence "Building prefix dict..."
    # A private instance: words another module adds to jieba's global dictionary cannot leak in.
    segmenter = jieba.Tokenizer()
    segmenter.initialize()

    def tokenize(text: str) -> list[Span]:
        raw = ((start, end) for _, start, end in segmenter.tokenize(text, mode="default", HMM=True))
        return _drop_whitespace(text, raw)

    return tokenize


def _build_th() -> WordTokenizer:
    try:
        from pythainlp.tokenize import word_tokenize
    except ImportError:
        raise _missing("pythainlp", "th") from None

    def tokenize(text: str) -> list[Span]:
        tokens = word_tokenize(text, engine="newmm", keep_whitespace=True)
        if "".join(tokens) != text:  # never seen; keep the offsets honest if it happens
            return _aligned_per_line(text, lambda t: word_tokenize(t, engine="newmm"))
        raw: list[Span] = []
        pos = 0
        for token in tokens:
            raw.append((pos, pos + len(token)))
            pos += len(token)
        return _drop_whitespace(text, raw)

    return tokenize


def _build_ko() -> WordTokenizer:
    try:
        import mecab
    except ImportError:
        raise _missing("python-mecab-ko", "ko") from None
    analyser = mecab.MeCab()
    # MeCab.parse() reports wrong spans after repeated or leading whitespace and builds a
    # feature tuple per morpheme (4x slower); walk MeCab's lattice for surfaces and align them.
    try:
        import _mecab
        from mecab.utils import create_lattice

        tagger, eos = analyser._tagger, _mecab.MECAB_EOS_NODE
    except (ImportError, AttributeError):  # internals moved: same surfaces, slower
        return lambda text: _aligned_per_line(text, analyser.morphs)

    def surfaces(line: str) -> list[str]:
        lattice = create_lattice(line)
        if not tagger.parse(lattice):
            raise RuntimeError(f"MeCab failed on {line[:80]!r}: {tagger.what()}")
        out = []
        node = lattice.bos_node().next
        while node is not None and node.stat != eos:
            out.append(node.surface)
            node = node.next
        return out

    return lambda text: _aligned_per_line(text, surfaces)


def _align_vi(line: str, tokens: list[str]) -> list[Span] | None:
    """Align pyvi tokens, where ``_`` joins syllables that the text separates by whitespace.

    A joined word keeps single spaces (U+0020) inside its span; other whitespace splits it.
    """
    spans: list[Span] = []
    pos, n = 0, len(line)
    for token in tokens:
        if "_" not in token:
            start = line.find(token, pos)
            if start < 0 or (start > pos and not line[pos:start].isspace()):
                return None
            pos = start + len(token)
            _append_split(line, start, pos, spans)
            continue
        while pos < n and line[pos].isspace():
            pos += 1
        start = pos
        for char in token:
            if pos < n and line[pos] == char:  # "_" may also be a literal underscore
                pos += 1
            elif char == "_" and pos < n and line[pos].isspace():
                gap_start = pos
                while pos < n and line[pos].isspace():
                    pos += 1
                if pos - gap_start > 1 or line[gap_start] != " ":
                    spans.append((start, gap_start))
                    start = pos
            elif char == "_":  # pyvi joined two syllables the text writes without a gap
                continue
            else:
                return None
        spans.append((start, pos))
    if pos < n and not line[pos:].isspace():
        return None
    return spans


def _build_vi() -> WordTokenizer:
    try:
        from pyvi import ViTokenizer
    except ImportError:
        raise _missing("pyvi", "vi") from None
    return lambda text: _aligned_per_line(text, lambda t: ViTokenizer.tokenize(t).split(), _align_vi)


def _build_sw() -> WordTokenizer:
    try:
        from sacremoses import MosesTokenizer
    except ImportError:
        raise _missing("sacremoses", "sw") from None
    moses = _fast_moses_class(MosesTokenizer)(lang="sw")  # spaCy has no sw
    # escape=False keeps '"' as '"', not '&quot;'.
    return lambda text: _aligned_per_line(text, lambda t: moses.tokenize(t, escape=False))


def _fast_moses_class(moses_class: type) -> type:
    """``MosesTokenizer`` with the same answers from ``islower``/``isanyalpha``, 2x faster overall.

    sacremoses 0.2 rebuilds a set of ~2,000 characters on every call of these two predicates
    (once per sentence-final token); precomputing the sets changes nothing else.
    """
    lower, alpha = frozenset(moses_class.IsLower), frozenset(moses_class.IsAlpha)

    class FastMosesTokenizer(moses_class):
        def islower(self, text: str) -> bool:
            return set(text) <= lower

        def isanyalpha(self, text: str) -> bool:
            return not alpha.isdisjoint(text)

    return FastMosesTokenizer


_BUILDERS: dict[str, Callable[[], WordTokenizer]] = {
    "ja": _build_ja,
    "zh": _build_zh,
    "th": _build_th,
    "ko": _build_ko,
    "vi": _build_vi,
    "sw": _build_sw,
}
_BACKEND_DISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ja": ("sudachipy split mode A", ("sudachipy", "sudachidict_core")),
    "zh": ("jieba exact mode, HMM", ("jieba",)),
    "th": ("pythainlp newmm", ("pythainlp",)),
    "ko": ("mecab-ko morphemes", ("python-mecab-ko", "python-mecab-ko-dic")),
    "vi": ("pyvi ViTokenizer", ("pyvi",)),
    "sw": ("sacremoses MosesTokenizer(sw, escape=False)", ("sacremoses",)),
}
