"""Reference lines for docstrings, from the book's bibliography (book/references.bib).

    python tools/cite.py cui2025entropy shao2024deepseekmath

prints, ready to paste under a numpy-style ``References`` heading::

    - cui2025entropy: Cui et al. (2025), "The Entropy Mechanism of Reinforcement ...".

tests/test_api_links.py checks every such line against the bibliography (the key exists,
the authors, year and title agree), so a docstring cannot cite a paper the book lacks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def entries(bib: Path = BIB) -> dict:
    """``{key: (authors, year, title)}`` of every entry, authors as "Surname et al."."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(bib)).entries.items():
        people = entry.persons.get("author", [])
        if people:
            first = _plain(" ".join(people[0].last_names))
            authors = first if len(people) == 1 else (
                f"{first} and {_plain(' '.join(people[1].last_names))}" if len(people) == 2 else f"{first} et al.")
        else:
            authors = _plain(entry.fields.get("organization", entry.fields.get("publisher", key)))
        out[key] = (authors, _plain(entry.fields.get("year", "")), _plain(entry.fields.get("title", "")))
    return out


def line(key: str, known: dict | None = None) -> str:
    """The docstring line citing ``key``."""
    known = entries() if known is None else known
    if key not in known:
        raise KeyError(f"{key} is not in {BIB.name}")
    authors, year, title = known[key]
    return f'- {key}: {authors} ({year}), "{title}".'


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Print docstring reference lines for bibliography keys.")
    parser.add_argument("keys", nargs="+", help="keys of book/references.bib")
    args = parser.parse_args(argv)
    known = entries()
    unknown = [k for k in args.keys if k not in known]
    if unknown:
        print(f"not in {BIB.name}: {', '.join(unknown)}", file=sys.stderr)
        return 2
    for k in args.keys:
        print(line(k, known))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
