"""How many wiki-mrc queries still show a word of their entity's title, on the real English excerpt.

    python bench/query_names.py [--input DUMP] [--lang en] [--min-mentions 2] [--show 20]

A query "shows a name part" when a word of the entity's title (parenthetical dropped, at least
two letters, not a stop word of the language) occurs in it as a whole word with the title's own
capitalisation ("court" of "Appellate court" counts; that is a common noun, and the report says
so). Counted per entity (one query each) and per example (every example repeats its entity's
query), side by side for the baseline that masks surface forms only and for ours, which also
masks the title words that name the entity alone (`data_prep.mrc.name_parts`). Each word ours
still shows is listed with the verdict of `data_prep.mrc.title_part_verdicts` that kept it.
Runs on the raw examples, before subword encoding (encoding keeps the text; tests/test_mrc.py
checks that round trip).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shown_title_words(query: str, title: str, lang: str) -> list[str]:
    """Words of `title` that `query` still shows (whole words, case-sensitive), in title order."""
    from data_prep.mrc import stop_words, strip_parenthetical, surface_regex
    from data_prep.wordtok import words

    shown = []
    for word in words(strip_parenthetical(title), lang):
        if sum(ch.isalpha() for ch in word) < 2 or word.lower() in stop_words(lang):
            continue
        if word not in shown and surface_regex([word], lang, ignore_case=False).search(query):
            shown.append(word)
    return shown


def report(index, min_mentions: int, *, title_parts: bool = True) -> dict:
    """Per selected entity of `index`: title, query, shown words and their verdicts; totals.

    `title_parts=False` is the baseline: only the surface forms are masked, as before
    `data_prep.mrc.name_parts` existed.
    """
    from unittest import mock

    from data_prep import mrc

    lang = index.lang
    params = mrc.MRCParams(lang=lang, min_mentions=min_mentions)
    rows, totals = [], Counter()
    for entity in mrc.select_entities(index, params):
        with mock.patch.object(mrc, "name_parts", mrc.name_parts if title_parts else
                               lambda *args: []):
            examples = mrc.entity_examples(index, entity, params, Counter())
        if not examples:
            continue
        title, query = index.titles[entity], examples[0].query()
        shown = shown_title_words(query, title, lang)
        verdicts = dict(mrc.title_part_verdicts(index, entity))
        rows.append({"title": title, "query": query, "examples": len(examples),
                     "shown": {w: verdicts.get(w, "not a candidate") for w in shown}})
        totals["queries"] += 1
        totals["examples"] += len(examples)
        totals["queries_showing"] += bool(shown)
        totals["examples_showing"] += len(examples) if shown else 0
    return {"rows": rows, "totals": dict(totals)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(REPO.parent / "shared/data/wiki/enwiki-sample.xml.bz2"))
    parser.add_argument("--lang", default="en")
    parser.add_argument("--min-mentions", type=int, default=2)
    parser.add_argument("--show", type=int, default=20, help="queries to print")
    args = parser.parse_args()

    from data_prep.mrc import build_index
    from data_prep.wiki import read_wiki

    index = build_index(read_wiki(args.input, args.lang, progress=False), args.lang)
    print("queries showing a word of their entity's title:")
    for name, title_parts in [("surface forms only", False), ("+ title parts (ours)", True)]:
        result = report(index, args.min_mentions, title_parts=title_parts)
        t = result["totals"]
        print(f"  {name:22s} {t.get('queries_showing', 0):3d} / {t.get('queries', 0)} entities, "
              f"{t.get('examples_showing', 0):4d} / {t.get('examples', 0)} examples")
    for row in [r for r in result["rows"] if r["shown"]][: args.show]:
        shown = ", ".join(f"{w!r} ({why})" for w, why in row["shown"].items())
        print(f"- {row['title']}: {shown}\n    {row['query'][:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
