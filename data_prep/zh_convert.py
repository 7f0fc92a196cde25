"""Chinese Wikipedia text -> Simplified Chinese: MediaWiki ``-{…}-`` markup resolved, the rest by OpenCC.

zh.wikipedia stores each page in whatever script its editors wrote and converts it for the reader. We read
every page as a zh-hans reader sees it: language-conversion markup (MediaWiki's ``ConverterRule`` /
``ZhConverter``) picks the zh-hans text, and OpenCC's ``t2s`` (characters and phrases, no regional
vocabulary, like MediaWiki's zh-hans table; also the reference mPMR pipeline's choice) converts the rest.
Titles, link targets and redirects go through :func:`to_simplified` too, so links keep resolving.

Works on raw wikitext and on WikiExtractor output alike (``[[…]]``, ``{{…}}`` and ``<…>`` are opaque).
Never: convert text that the markup marks as not to be converted (``-{text}-``, ``-{R|…}-``).
"""

from __future__ import annotations

import functools
import re

# MediaWiki's ZhConverter: variants, zh-hans fallbacks, and the names the N and D flags print.
VARIANT_NAMES = {
    "zh": "原文", "zh-hans": "简体", "zh-hant": "繁體", "zh-cn": "大陆", "zh-tw": "臺灣", "zh-hk": "香港",
    "zh-mo": "澳門", "zh-sg": "新加坡", "zh-my": "大马",
}
TARGET = "zh-hans"
TARGET_FALLBACKS = ("zh-cn", "zh-sg", "zh-my")
_FLAGS = frozenset("ATRDHN-") | frozenset(VARIANT_NAMES)
OPENCC_CONFIG = "t2s"

_TOKEN_RE = re.compile(  # the -{ of "-{{template}}" opens a template, not a conversion
    r"(?P<skip><(?P<tag>nowiki|math|chem|ce|pre|code|syntaxhighlight|source|score|timeline)\b[^>]*(?<!/)>"
    r".*?</(?P=tag)\s*>|<!--.*?-->)|-\{(?!\{)|\}-|\{\{|\}\}",
    re.DOTALL | re.IGNORECASE,
)
# Innermost links and templates, then tags: pipes, ';' and ':' inside them are no rule syntax.
_OPAQUE_RES = (re.compile(r"\[\[[^\[\]]*\]\]|\{\{[^{}]*\}\}"), re.compile(r"<[^<>]*>"))
_HOLE = "\ue000%d\ue001"
_HOLE_RE = re.compile("\ue000(\\d+)\ue001")
_VARIANT = "|".join(sorted(map(re.escape, VARIANT_NAMES), key=len, reverse=True))
_VARSEP_RE = re.compile(  # ';' separates rules only before "variant:" or "from=>variant:" (getVarSeparatorPattern)
    r";\s*(?=(?:%s)\s*:|[^;]*?=>\s*(?:%s)\s*:|\s*$)" % (_VARIANT, _VARIANT), re.IGNORECASE
)
_ENTITY_SEMI_RE = re.compile(r"(&[#a-zA-Z0-9]+);")


@functools.lru_cache(maxsize=1)
def _opencc():
    try:
        import opencc
    except ImportError as err:  # pragma: no cover - opencc is an install requirement
        raise ImportError("zh text needs OpenCC: pip install opencc (binary wheel, dictionaries included)") from err
    return opencc.OpenCC(OPENCC_CONFIG)


def t2s(text: str) -> str:
    """OpenCC Traditional -> Simplified of plain text (no markup handling)."""
    return _opencc().convert(text) if text else text


def to_simplified(text: str) -> str:
    """``text`` as a zh-hans reader sees it: conversion markup resolved, everything else through t2s."""
    if "-{" not in text:
        return t2s(text)
    return "".join(t2s(piece) if convert else piece for piece, convert in resolve_markup(text))


def resolve_markup(text: str) -> list[tuple[str, bool]]:
    """Split ``text`` into (piece, convert?) with every top-level ``-{…}-`` replaced by its zh-hans display.

    Nested markup is resolved inside out; an unclosed ``-{`` stays literal text (as in MediaWiki).
    """
    pieces: list[tuple[str, bool]] = []
    cursor, opens, braces = 0, [], 0  # opens: (offset, brace depth) of the enclosing -{
    for m in _TOKEN_RE.finditer(text):
        token = m.group()
        if m.group("skip"):
            continue
        if token == "-{":
            opens.append((m.start(), braces))
        elif token == "{{":
            braces += 1
        elif token == "}}":
            braces = max(0, braces - 1)
        elif opens and opens[-1][1] == braces:  # "}-" closing the innermost -{
            start, _ = opens.pop()
            if not opens:
                pieces.append((text[cursor:start], True))
                pieces.append(rule_display(_flatten(text[start + 2:m.start()])))
                cursor = m.end()
    pieces.append((text[cursor:], True))
    return [(piece, convert) for piece, convert in pieces if piece]


def _flatten(inner: str) -> str:
    """Inner text of a rule with nested rules replaced by their display."""
    return "".join(piece for piece, _ in resolve_markup(inner)) if "-{" in inner else inner


def _parse_flags(text: str) -> tuple[list[str], set[str], str]:
    """(flags in MediaWiki's order, variant flags, rules text) of the text between -{ and }-."""
    flags: list[str] = []
    if "|" in text:
        head, text = text.split("|", 1)
        for flag in head.split(";"):
            flag = flag.strip().lower() if flag.strip().lower() in VARIANT_NAMES else flag.strip()
            if flag in _FLAGS and flag not in flags:
                flags.append(flag)
    if not flags:
        return ["S"], set(), text
    for only in ("R", "N", "-"):
        if only in flags:
            return [only], set(), text
    if flags == ["T"]:
        return ["T", "H"], set(), text
    if "H" in flags:
        return ["+", "H"] + [f for f in ("T", "D") if f in flags], set(), text
    if "A" in flags:
        flags += [f for f in ("+", "S") if f not in flags]
    if "D" in flags and "S" in flags:
        flags.remove("S")
    variants = {f for f in flags if f in VARIANT_NAMES}
    return ([], variants, text) if variants else (flags, set(), text)


def _parse_rules(rules: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(bidirectional {variant: text}, unidirectional {variant: {from: to}}); both empty on a syntax error."""
    bidirectional: dict[str, str] = {}
    unidirectional: dict[str, dict[str, str]] = {}
    rules = _ENTITY_SEMI_RE.sub("\\1\x01", rules)
    for choice in _VARSEP_RE.split(rules):
        choice = choice.replace("\x01", ";")
        if ":" not in choice:
            continue
        variant, to = (part.strip() for part in choice.split(":", 1))
        if "=>" in variant:
            source, variant = (part.strip() for part in variant.split("=>", 1))
            variant = variant.lower()
            if source and variant in VARIANT_NAMES:
                unidirectional.setdefault(variant, {})[source] = to
        else:
            variant = variant.lower()
            if to and variant in VARIANT_NAMES:
                bidirectional[variant] = to
        if variant not in VARIANT_NAMES:
            return {}, {}
    return bidirectional, unidirectional


def _zh_hans_text(rules: str, bidirectional: dict, unidirectional: dict) -> tuple[str, bool]:
    """getRuleConvertedStr for zh-hans; where MediaWiki shows an error, the zh text or the first one, converted."""
    if not bidirectional and not unidirectional:
        return rules, False
    for variant in (TARGET, *TARGET_FALLBACKS):
        if variant in bidirectional:
            return bidirectional[variant], False
    if TARGET in unidirectional:
        return next(iter(unidirectional[TARGET].values())), False
    if bidirectional:
        return bidirectional.get("zh", next(iter(bidirectional.values()))), True
    return next(iter(next(iter(unidirectional.values())).values())), True


def _describe(bidirectional: dict, unidirectional: dict) -> str:
    """The D flag's rule description, e.g. "简体：悉尼；繁體：雪梨；"."""
    text = "".join(f"{VARIANT_NAMES[v]}：{t}；" for v, t in bidirectional.items())
    return text + "".join(f"{s}⇒{VARIANT_NAMES[v]}：{t}；" for v, pairs in unidirectional.items()
                          for s, t in pairs.items())


def rule_display(inner: str) -> tuple[str, bool]:
    """What a zh-hans reader sees for ``-{inner}-`` and whether OpenCC may still convert it.

    Follows MediaWiki's ConverterRule::parse: ``-{text}-``, ``-{R|…}-`` print the text unconverted; ``-{H|…}-``,
    ``-{T|…}-``, ``-{-|…}-`` print nothing; ``-{A|…}-`` and plain ``-{zh-hans:…;zh-hant:…}-`` print the zh-hans
    text (zh-cn, zh-sg, zh-my as fallbacks); ``-{zh-hans;zh-hant|…}-`` prints the text converted;
    ``-{N|variant}-`` prints the variant's name; ``-{D|…}-`` the rule description. Page-wide rules that H and A
    add are not applied to the rest of the page (for zh-hans MediaWiki applies only their one-way
    ``from=>zh-hans:to`` parts).
    """
    holes: list[str] = []

    def hide(m: re.Match) -> str:
        holes.append(m.group())
        return _HOLE % (len(holes) - 1)

    def show(text: str) -> str:
        while _HOLE_RE.search(text):
            text = _HOLE_RE.sub(lambda m: holes[int(m.group(1))], text)
        return text

    for opaque_re in _OPAQUE_RES:
        hidden = -1
        while hidden != len(holes):
            hidden = len(holes)
            inner = opaque_re.sub(hide, inner)
    flags, variants, rules = _parse_flags(inner)
    if variants:  # -{zh-hans;zh-hant|text}-: shown converted to the reader's variant when listed, else as is
        return show(rules), bool(variants & {TARGET, *TARGET_FALLBACKS})
    bidirectional, unidirectional = ({}, {}) if "R" in flags or "N" in flags else _parse_rules(rules)
    if not bidirectional and not unidirectional:
        if "+" in flags or "-" in flags:
            if rules:
                bidirectional = {variant: rules for variant in VARIANT_NAMES}
        elif "N" not in flags and "T" not in flags:
            flags = ["R"]
    display: tuple[str, bool] = ("", False)
    for flag in flags:
        if flag == "R":
            display = (rules, False)
        elif flag == "N":
            display = (VARIANT_NAMES.get(rules.strip().lower(), ""), False)
        elif flag == "D":
            display = (_describe(bidirectional, unidirectional), False)
        elif flag in ("H", "-", "+", "T"):
            display = ("", False)
        elif flag == "S":
            display = _zh_hans_text(rules, bidirectional, unidirectional)
    return show(display[0]), display[1]
