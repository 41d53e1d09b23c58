"""Propose (or apply) explicit ``{py:func}`` references where a chapter introduces a function.

The build already links every inline code span that names a companion function the way
the chapter imports it (```nc.nc_metrics``` -> its API entry; book/_ext/api_links.py), so
the notebooks need no edit for the links to exist. This tool is for making the first
mention explicit in the source, and for finding functions a chapter calls but never names
in its text:

    python tools/add_func_refs.py                 # dry run: what would change, and the unnamed calls
    python tools/add_func_refs.py --write book/01_neural_collapse.ipynb

For each companion function, class or method the chapter calls, the first markdown mention
as inline code (```nc.train_ufm``` or ```nc.train_ufm(...)```) becomes
``{py:func}`nc.train_ufm <companion.neural_collapse.train_ufm>``` (``py:class`` for
classes, ``py:meth`` for methods). Colab shows MyST roles as raw text, so the dry run is
the default; cell ids and all other cells are kept.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import api_links  # noqa: E402


def _role(obj, name: str) -> str:
    if inspect.isclass(obj):
        return "py:class"
    return "py:meth" if name.count(".") >= 3 and inspect.isclass(api_links.resolve(name.rsplit(".", 1)[0])) else "py:func"


def propose(path: Path):
    """``(changes, unnamed)``: changes are ``(cell index, old, new)``; unnamed lists the
    calls never named in the text."""
    scan = api_links.scan_chapter(path, ROOT)
    nb = nbformat.read(path, as_version=4)
    reverse = {}  # canonical name -> the spellings the chapter could use
    for alias, target in scan.aliases.items():
        for name in scan.calls:
            if name == target or name.startswith(target + "."):
                reverse.setdefault(name, []).append(alias + name[len(target):])
            else:
                obj = api_links.resolve(target)
                if obj is not None and api_links.canonical(target, obj) == name:
                    reverse.setdefault(name, []).append(alias)
    changes, unnamed = [], []
    for name in scan.calls:
        if name.startswith(api_links.UNDOCUMENTED_PREFIXES):
            continue
        obj = api_links.resolve(name)
        if not (getattr(obj, "__module__", "") or "").startswith("companion"):
            continue
        spellings = sorted(set(reverse.get(name, [])) | {name}, key=len, reverse=True)
        found = False
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "markdown":
                continue
            for spelling in spellings:
                pattern = re.compile(r"(?<![}\w])`(" + re.escape(spelling) + r")(\([^`]*\))?`")
                match = pattern.search(cell.source)
                if match:
                    new = f"{{{_role(obj, name)}}}`{match.group(1)}{match.group(2) or ''} <{name}>`"
                    changes.append((i, match.group(0), new))
                    found = True
                    break
            if found:
                break
        if not found:
            unnamed.append(name)
    return changes, unnamed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--write", action="store_true", help="apply the changes (default: dry run)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob(api_links.CHAPTER_GLOB))
    for path in paths:
        changes, unnamed = propose(path.resolve())
        print(f"== {path.name}: {len(changes)} first mentions to make explicit")
        for i, old, new in changes:
            print(f"  cell {i}: {old}  ->  {new}")
        if unnamed:
            print(f"  called but never named as inline code in the text: {', '.join(unnamed)}")
        if args.write and changes:
            nb = nbformat.read(path, as_version=4)
            for i, old, new in changes:
                nb.cells[i].source = nb.cells[i].source.replace(old, new, 1)
            nbformat.write(nb, path)
            print(f"  written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
