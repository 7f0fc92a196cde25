"""Template husks and lost dashes in the text of the real English excerpt: plain WikiExtractor vs ours.

    python bench/wiki_text.py [--input DUMP] [--show 5]

Both columns clean the same articles (those `read_wiki` keeps) with the same code except the template
lookup: "plain" is WikiExtractor 3.1 without template definitions (every template vanishes, as in the
original mPMR pipeline), "ours" is `data_prep.wiki_templates`. Counted in the final article text:
empty brackets "()", "( )", "(; )"; brackets that open or close with a separator "(; born", "x, )";
en/em dashes; and, in the wikitext, the dash templates and {{convert}} ranges whose dash plain loses.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DASH_SOURCES = re.compile(
    r"\{\{\s*(?:ndash|mdash|mdashb|snd|spnd|sndash|snds|spaced ndash|spaced en dash)\s*[|}]"
    r"|\{\{\s*(?:convert|cvt)\s*\|[^|{}]*\|\s*(?:-|–|&ndash;)\s*\|", re.IGNORECASE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(REPO.parent / "shared/data/wiki/enwiki-sample.xml.bz2"))
    parser.add_argument("--show", type=int, default=5, help="husks left by ours to print")
    args = parser.parse_args()

    from wikiextractor import extract as wx

    from data_prep.wiki import _dump_jobs, _split_anchors, _wikiextractor_clean, read_wiki
    from data_prep.wiki_templates import HUSK_PATTERNS, TemplateExtractor

    patterns = {**HUSK_PATTERNS, "en/em dashes": re.compile(r"[–—]")}

    kept = {a.title for a in read_wiki(args.input, "en", progress=False).articles}
    pages = [(t, body, ts) for _, t, body, ts in _dump_jobs(Path(args.input), "en", {}, Counter()) if t in kept]
    dash_sources = sum(len(DASH_SOURCES.findall(body)) for _, body, _ in pages)
    counts: dict[str, Counter] = {}
    seconds: dict[str, float] = {}
    left: list[str] = []
    for name, cls in (("plain", wx.Extractor), ("ours", TemplateExtractor)):
        counts[name], began = Counter(), time.perf_counter()
        for title, body, timestamp in pages:
            text = _split_anchors(_wikiextractor_clean(title, body, timestamp, extractor_cls=cls))[0]
            for label, pattern in patterns.items():
                for m in pattern.finditer(text):
                    counts[name][label] += 1
                    if name == "ours" and label != "en/em dashes":
                        left.append(f"{title}: …{text[max(0, m.start() - 50):m.end() + 30]}…")
        seconds[name] = time.perf_counter() - began
    print(f"{len(pages)} articles of {args.input}; {dash_sources} dash templates / convert ranges in their wikitext")
    print(f"{'':34s} {'plain':>7s} {'ours':>7s}")
    for label in patterns:
        print(f"{label:34s} {counts['plain'][label]:7d} {counts['ours'][label]:7d}")
    print(f"{'cleaning time (s)':34s} {seconds['plain']:7.2f} {seconds['ours']:7.2f}   "
          f"ours/plain {seconds['ours'] / seconds['plain']:.2f}x")
    for line in left[:args.show]:
        print("  left:", line.replace("\n", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
