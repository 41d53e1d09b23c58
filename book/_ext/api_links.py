"""Book <-> code links, generated at build time so that they cannot go stale.

Registered in ``_config.yml`` under ``sphinx.local_extensions`` (with ``sphinx.ext.viewcode``,
which gives every API entry a ``[source]`` link). At build time this extension

1. scans the chapter notebooks (``book/NN_*.ipynb``) for calls of companion functions:
   ``<alias>.<function>(...)`` with the chapter's own import aliases resolved
   (``from companion import neural_collapse as nc`` makes ``nc.nc_metrics(...)`` a call of
   ``companion.neural_collapse.nc_metrics``), plain names imported from companion
   (``from companion.data import load_digits``), full paths (``companion.training.seeds(3)``)
   and methods of instances the chapter made (``tracker = nc.NCTracker(...)`` then
   ``tracker.compute(...)``);
2. appends to the API docstring of each function, class and method a chapter calls a line
   ``Used in: Chapter N, Section k (title)``, each linking to that section
   (``autodoc-process-docstring``); the section labels are registered when the chapters
   are read, so a renamed or removed section is a broken reference, which the strict
   build (``-W``) reports;
3. turns inline code in a chapter's text that names a companion function the way the
   chapter imports it (```nc.nc_metrics```, ```companion.data.gaussian_mixture```) into a
   link to its API entry (a ``py:obj`` reference that warns when the entry is missing).

The scanner needs no Sphinx: ``tests/test_api_links.py`` and ``tools/add_func_refs.py``
import :func:`scan_book` to check that every call resolves to a public, documented entry.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
#: The modules whose calls are not API entries (exercise checks live with the coursework).
UNDOCUMENTED_PREFIXES = ("companion.exercises.",)


@dataclass(frozen=True)
class Use:
    """One place a chapter calls a companion object."""

    chapter: int
    chapter_title: str
    docname: str          # e.g. "book/01_neural_collapse"
    section: str          # the section's heading text ("" for the setup cell)
    number: str | None    # "3" for a heading "## 3. Weight decay", else None

    @property
    def label(self) -> str:
        stem = self.docname.rsplit("/", 1)[-1]
        return f"used-in-{stem}-{slug(self.section) or 'setup'}".lower()

    @property
    def text(self) -> str:
        if not self.section:
            return f"Chapter {self.chapter} (setup cell)"
        title = re.sub(r"^\d+\.\s*", "", self.section)
        if self.number:
            return f"Chapter {self.chapter}, Section {self.number} ({title})"
        return f"Chapter {self.chapter}, {title}"


@dataclass
class ChapterScan:
    """What one chapter calls: canonical name -> uses, and its import aliases."""

    path: Path
    docname: str
    chapter: int
    title: str
    aliases: dict[str, str] = field(default_factory=dict)
    calls: dict[str, list[Use]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)   # companion paths that do not exist
    sections: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    text = re.sub(r"[`*$\\]", "", text).strip().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _source(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _python(src: str) -> ast.Module | None:
    """Parse a code cell, with IPython magics and shell lines replaced by ``pass``."""
    lines = [re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in src.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _dotted(node, names: dict[str, str]) -> str | None:
    """The dotted path of ``a.b.c`` with ``a`` resolved through ``names``, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    return ".".join([names[node.id]] + parts[::-1])


def resolve(path: str):
    """Import the object at a dotted ``path`` (module prefix, then attributes), or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def canonical(path: str, obj=None) -> str:
    """Where the API page documents ``obj``: its defining module and qualified name."""
    obj = resolve(path) if obj is None else obj
    if inspect.ismodule(obj):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module and qualname and module.startswith("companion") and "<" not in qualname:
        return f"{module}.{qualname}"
    return path


def scan_chapter(path: Path, root: Path) -> ChapterScan:
    """The companion calls of one chapter notebook, with the section of each call."""
    nb = json.loads(Path(path).read_text())
    docname = str(Path(path).relative_to(root).with_suffix("")).replace("\\", "/")
    title_cell = next((_source(c) for c in nb["cells"] if c["cell_type"] == "markdown"), "")
    match = re.search(r"^# Chapter (\d+):\s*(.+)$", title_cell, re.M)
    chapter, title = (int(match.group(1)), match.group(2).strip()) if match else (0, Path(path).stem)
    scan = ChapterScan(Path(path), docname, chapter, title)
    names: dict[str, str] = {}        # local name -> companion dotted path
    instances: dict[str, str] = {}    # local variable -> dotted path of its companion class
    section, number = "", None
    first_code = True
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] == "markdown":
            for line in src.splitlines():
                heading = re.match(r"^##\s+(.+?)\s*#*\s*$", line)
                if heading:
                    section = heading.group(1).strip()
                    num = re.match(r"^(\d+)\.", section)
                    number = num.group(1) if num else None
                    scan.sections.append(section)
            continue
        if cell["cell_type"] != "code":
            continue
        tree = _python(src)
        where = "" if first_code else section
        where_number = None if first_code else number
        first_code = False
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "companion":
                        if a.asname:
                            names[a.asname] = a.name
                        else:
                            names["companion"] = "companion"
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] == "companion":
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
        scan.aliases.update(names)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and isinstance(node.value, ast.Call):
                target = _dotted(node.value.func, names)
                if target and inspect.isclass(resolve(target)):
                    instances[node.targets[0].id] = target
            if not isinstance(node, ast.Call):
                continue
            path_ = _dotted(node.func, names)
            if path_ is None and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id in instances:
                path_ = f"{instances[node.func.value.id]}.{node.func.attr}"
            if path_ is None or path_ == "companion":
                continue
            obj = resolve(path_)
            if obj is None:
                scan.unresolved.append(path_)
                continue
            if inspect.ismodule(obj):
                continue
            name = canonical(path_, obj)
            use = Use(chapter, title, docname, where, where_number)
            uses = scan.calls.setdefault(name, [])
            if use not in uses:
                uses.append(use)
    return scan


def scan_book(root: Path) -> list[ChapterScan]:
    """Scan every chapter notebook under ``root/book``."""
    root = Path(root)
    return [scan_chapter(p, root) for p in sorted((root / "book").glob(CHAPTER_GLOB))]


def uses_by_object(scans: list[ChapterScan]) -> dict[str, list[Use]]:
    """Canonical name -> every use, in chapter order."""
    out: dict[str, list[Use]] = {}
    for scan in scans:
        for name, uses in scan.calls.items():
            out.setdefault(name, []).extend(uses)
    return out


def used_in_lines(uses: list[Use]) -> list[str]:
    """The reST appended to a docstring: one paragraph linking every section."""
    refs = "; ".join(f":ref:`{u.text} <{u.label}>`" for u in uses)
    return ["", f"**Used in:** {refs}.", ""]


# ---------------------------------------------------------------------------------------
# Sphinx hooks
# ---------------------------------------------------------------------------------------

def _scan(app):
    """Scan the chapters once per build (kept on the application, not the pickled env)."""
    if getattr(app, "_companion_api_uses", None) is None:
        scans = scan_book(Path(app.srcdir))
        app._companion_api_scans = {s.docname: s for s in scans}
        app._companion_api_uses = uses_by_object(scans)
    return app._companion_api_uses


def add_used_in(app, what, name, obj, options, lines):
    """autodoc-process-docstring: append the "Used in" line to each entry a chapter calls."""
    uses = _scan(app).get(name)
    if not uses and what in ("function", "class", "method", "exception") and obj is not None:
        uses = _scan(app).get(canonical(name, obj))
    if uses:
        lines.extend(used_in_lines(uses))


def register_section_labels(app, doctree):
    """doctree-read: give every ``##`` section of a chapter the label the docstrings cite,
    and link inline code naming a companion function to its API entry."""
    from docutils import nodes
    from sphinx import addnodes

    docname = app.env.docname
    _scan(app)
    scan = app._companion_api_scans.get(docname)
    if scan is None:
        return
    std = app.env.get_domain("std")
    sections = [s for s in doctree.findall(nodes.section)]
    top = sections[0] if sections else None
    by_slug = {}
    for s in sections:
        title = s.next_node(nodes.title)
        if title is not None and s["ids"]:
            by_slug.setdefault(slug(title.astext()), s)
    all_uses = [u for uses in scan.calls.values() for u in uses]
    for use in all_uses:
        target = by_slug.get(slug(use.section)) if use.section else top
        target = target if target is not None else top
        if target is None or not target["ids"]:
            continue
        std.labels[use.label] = (docname, target["ids"][0], use.text)
        std.anonlabels[use.label] = (docname, target["ids"][0])

    # Inline code naming a companion object the way the chapter does: a link to the API.
    names = scan.aliases
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, (nodes.reference, addnodes.pending_xref, nodes.literal_block)):
            continue
        text = literal.astext().strip()
        bare = re.sub(r"\(.*\)$", "", text)
        if not re.fullmatch(r"[A-Za-z_][\w.]*", bare):
            continue
        head, _, rest = bare.partition(".")
        if head not in names:
            continue
        path = names[head] + (f".{rest}" if rest else "")
        obj = resolve(path)
        if obj is None or inspect.ismodule(obj) or not callable(obj) \
                or path.startswith(UNDOCUMENTED_PREFIXES):
            continue
        target = canonical(path, obj)
        ref = addnodes.pending_xref("", refdomain="py", reftype="obj", reftarget=target,
                                    refexplicit=True, refwarn=True, refdoc=docname)
        ref += nodes.literal(literal.rawsource, literal.astext(), classes=["xref", "py", "py-obj"])
        literal.replace_self(ref)


def api_always_outdated(app, env, added, changed, removed):
    """env-get-outdated: re-read the API page whenever a chapter changed (its uses may have)."""
    chapters = {d for d in (added | changed) if re.match(r"book/\d\d_", d)}
    if chapters and "book/api" in env.found_docs:
        return ["book/api"]
    return []


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    # After napoleon (priority 500) has turned the numpy sections into reST.
    app.connect("autodoc-process-docstring", add_used_in, priority=600)
    app.connect("doctree-read", register_section_labels)
    app.connect("env-get-outdated", api_always_outdated)
    return {"parallel_read_safe": False, "parallel_write_safe": True, "version": "0.1"}
