"""Book <-> code links (book/_ext/api_links.py): every companion call in a chapter resolves
to a public, documented API entry, and the "Used in" lines the build adds point at real
sections. The scanner is the one the Sphinx extension runs, so these tests fail as soon
as a chapter calls something the API page would not show."""

import inspect
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import api_links  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SCANS = api_links.scan_book(ROOT)
API = (ROOT / "book" / "api.md").read_text()


def _documented_modules():
    """module -> None (all of __all__) or the explicit member list of its automodule."""
    out = {}
    for module, options in re.findall(r"\.\. automodule:: ([\w.]+)\n((?:[ \t]+:.*\n?)*)", API):
        members = re.search(r":members:(.*)", options)
        if members is None:
            continue
        listed = [m.strip() for m in members.group(1).split(",") if m.strip()]
        out[module] = listed or None
    return out


def _api_calls():
    """(chapter docname, canonical name, object) for every companion object a chapter calls
    that is defined in the package (inherited torch methods and exercise checks aside)."""
    calls = []
    for scan in SCANS:
        for name in scan.calls:
            if name.startswith(api_links.UNDOCUMENTED_PREFIXES):
                continue
            obj = api_links.resolve(name)
            if not (getattr(obj, "__module__", "") or "").startswith("companion"):
                continue
            calls.append((scan.docname, name, obj))
    return calls


def test_config_enables_viewcode_and_the_links_extension():
    assert "sphinx.ext.viewcode" in CONFIG["sphinx"]["extra_extensions"]
    assert CONFIG["sphinx"]["local_extensions"].get("api_links") == "book/_ext"


def test_the_scanner_finds_the_chapters_and_their_calls():
    assert len(SCANS) >= 5 and all(s.chapter > 0 for s in SCANS)
    for scan in SCANS:
        assert scan.calls, f"{scan.docname}: no companion call found (import aliases not resolved?)"
        assert "companion.training.set_seed" in scan.calls, f"{scan.docname}: the setup cell was not scanned"


@pytest.mark.parametrize("scan", SCANS, ids=lambda s: s.docname.rsplit("/", 1)[-1])
def test_every_companion_call_resolves(scan):
    assert not scan.unresolved, f"{scan.docname} calls companion paths that do not exist: {scan.unresolved}"


@pytest.mark.parametrize("docname, name, obj", _api_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_called_function_is_a_public_documented_api_entry(docname, name, obj):
    module_name = obj.__module__
    qualname = name[len(module_name) + 1:]
    assert not any(part.startswith("_") for part in qualname.split(".")), (
        f"{docname} calls {name}, which is private: make it public or keep the chapter off it")
    module = sys.modules[module_name]
    top = qualname.split(".")[0]
    assert top in getattr(module, "__all__", ()), f"{docname} calls {name}: {top} is not in {module_name}.__all__"
    documented = _documented_modules()
    assert module_name in documented, f"{docname} calls {name}: book/api.md has no automodule for {module_name}"
    listed = documented[module_name]
    assert listed is None or top in listed, f"{docname} calls {name}: not in the :members: list of {module_name}"
    assert (inspect.getdoc(obj) or "").strip(), f"{docname} calls {name}, which has no docstring (no API entry)"


@pytest.mark.parametrize("scan", SCANS, ids=lambda s: s.docname.rsplit("/", 1)[-1])
def test_used_in_lines_point_at_sections_of_the_chapter(scan):
    for name, uses in scan.calls.items():
        for use in uses:
            assert use.section == "" or use.section in scan.sections, (name, use)
            assert re.fullmatch(r"used-in-[\w-]+", use.label)
            assert use.text.startswith(f"Chapter {scan.chapter}")
        line = "".join(api_links.used_in_lines(uses))
        assert line.count(":ref:") == len(uses)


def test_autodoc_hook_appends_used_in_to_a_called_function_only():
    class App:
        srcdir = str(ROOT)

    from companion.training import set_seed

    lines = ["Seed everything."]
    api_links.add_used_in(App(), "function", "companion.training.set_seed", set_seed, {}, lines)
    text = "\n".join(lines)
    assert "**Used in:**" in text
    for scan in SCANS:
        assert f"<used-in-{scan.docname.rsplit('/', 1)[-1]}-setup>" in text
    untouched = ["Not called by any chapter."]
    api_links.add_used_in(App(), "function", "companion.training.History.keys", None, {}, untouched)
    assert untouched == ["Not called by any chapter."]


def test_scanner_resolves_aliases_plain_imports_paths_and_instances(tmp_path):
    import json

    (tmp_path / "book").mkdir()
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# Chapter 9: Test\n"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "import sys\nif 1:\n    %pip install x\nimport companion\nfrom companion import evidence as ev\n"
                   "from companion.training import seeds\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "## 1. First\n"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "s = ev.spread(seeds(3))\nh = companion.training.History()\nh.log(0, {})\n"
                   "companion.evidence.nope()\n"},
    ]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "book" / "09_test.ipynb").write_text(json.dumps(nb))
    scan, = api_links.scan_book(tmp_path)
    assert set(scan.calls) == {"companion.evidence.spread", "companion.training.seeds",
                               "companion.training.History", "companion.training.History.log"}
    assert scan.calls["companion.evidence.spread"][0].text == "Chapter 9, Section 1 (First)"
    assert scan.unresolved == ["companion.evidence.nope"]


def test_no_helper_is_defined_in_more_than_one_module():
    """Shared helpers (tensor conversion, figures, thread limits, ...) live once: every
    top-level function or class name is defined in one module of the package only."""
    import ast
    import collections

    package = Path(__file__).resolve().parents[1] / "companion"
    homes = collections.defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                homes[node.name].append(str(path.relative_to(package)))
    allowed = {"__getattr__"}  # each package's lazy import hook
    twice = {name: where for name, where in homes.items() if len(where) > 1 and name not in allowed}
    assert not twice, f"defined in more than one module: {twice}"
