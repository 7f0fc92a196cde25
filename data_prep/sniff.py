"""What an input file looks like, from its first bytes: the input checks of the data builds.

Each build reads its inputs' heads before it sets up its output folder, so that an HTML page, an
empty file or a PNG passed by mistake is refused with one line naming the file, never built into
an empty or garbage dataset. Never reads more than SNIFF_BYTES (decompressed) of a file.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import re
from pathlib import Path

SNIFF_BYTES = 1 << 16
# Formats passed by mistake, by their first bytes (after bz2/gzip decompression).
MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
    b"%PDF": "a PDF document", b"PK\x03\x04": "a zip archive", b"\xfd7zXZ": "xz-compressed data",
    b"\x28\xb5\x2f\xfd": "zstd-compressed data", b"7z\xbc\xaf": "a 7z archive",
}
# First two bytes of UTF-16 text -> codec (a UTF-16 dump starts with a BOM or "<").
UTF16_STARTS = {b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16", b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}
_HTML_RE = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_DUMP_RE = re.compile(r"<(?:\w+:)?mediawiki\b|<page[\s>]")
# A JSON document rather than JSON lines: SQuAD's {"data": [...], "version": ...}, or an object
# spread over lines ("{" alone, then "key": …).
_SQUAD_RE = re.compile(r'^[\[{]\s*"(?:data|version)"\s*:|"paragraphs"\s*:\s*\[')
_PRETTY_JSON_RE = re.compile(r'^[\[{][ \t]*\n\s*(?:"[^"\n]*"\s*:|[\[{])')


def read_head(path: str | Path, size: int = SNIFF_BYTES) -> tuple[bytes, bool]:
    """Up to `size` decompressed bytes of `path`, and whether that is the whole file. A bz2/gzip
    stream that stops early gives the bytes before the cut (and False)."""
    with open(path, "rb") as probe:
        magic = probe.read(3)
    opener = bz2.open if magic == b"BZh" else gzip.open if magic[:2] == b"\x1f\x8b" else open
    parts, got, whole = [], 0, False
    try:
        with opener(path, "rb") as raw:
            while got < size:
                chunk = raw.read1(size - got)
                if not chunk:
                    whole = True
                    break
                parts.append(chunk)
                got += len(chunk)
    except (OSError, EOFError):
        pass
    return b"".join(parts), whole


def head_text(head: bytes, utf16: bool = True) -> str:
    """The head decoded: UTF-16 when it starts like UTF-16 (and `utf16`), else UTF-8 without BOM."""
    codec = UTF16_STARTS.get(head[:2]) if utf16 else None
    if codec is not None:
        return codecs.getincrementaldecoder(codec)(errors="replace").decode(head)
    return head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")


def unusable(head: bytes, text: str) -> str | None:
    """What a head that no build reads looks like ("empty", "a PNG image", "binary data (…)"),
    else None. `text` is `head_text(head)`."""
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            return what
    if not head:
        return "empty"
    if not text.strip():
        return "blank (only whitespace)"
    if "\x00" in text or text.count("\ufffd") > len(text) * 0.3:
        return f"binary data (first bytes {head[:8].hex(' ')})"
    return None


def markup(text: str) -> str | None:
    """"html" or "mediawiki" for an HTML page or a MediaWiki XML dump, else None."""
    stripped = text.lstrip()
    if not stripped.startswith("<"):
        return None
    if _HTML_RE.search(stripped[:4096]):
        return "html"
    return "mediawiki" if _DUMP_RE.search(stripped) else None


def json_document(text: str) -> str | None:
    """What a head holding one JSON document (not JSON lines) looks like, else None."""
    stripped = text.lstrip()
    if stripped[:1] not in ("{", "["):
        return None
    if _SQUAD_RE.search(stripped):
        return 'SQuAD-style JSON (one object with "data"/"version"), not JSON lines of {"id", "title", "text"}'
    if _PRETTY_JSON_RE.match(stripped):
        return "one JSON document spread over lines, not JSON lines (one object per line)"
    return None
