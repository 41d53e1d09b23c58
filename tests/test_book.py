"""The book's structure: configuration, table of contents, chapter pattern, citations.

These tests read the sources only (no execution); the executed notebooks are checked by
nbval and the built HTML by tests/test_built_book.py.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

import companion
from companion.exercises import load_all

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


def _toc_files():
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def _source(cell):
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def _bib_keys():
    text = (BOOK / "references.bib").read_text()
    return re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", text, flags=re.M)


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks in book/"


def test_every_toc_entry_exists_and_every_chapter_is_in_the_toc():
    files = _toc_files()
    for entry in files:
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"
    for chapter in CHAPTERS:
        assert f"book/{chapter.stem}" in files, f"{chapter.name} is not in _toc.yml"


def test_config_has_launch_buttons_repository_and_bibliography():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["sphinx"]["recursive_update"] is True
    assert "sphinx_exercise" in CONFIG["sphinx"]["extra_extensions"]
    assert CONFIG["execute"]["execute_notebooks"] == "force"
    assert CONFIG["bibtex_bibfiles"] == ["book/references.bib"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"jupyter-book>=1\.0\.4,<2"', pyproject)
    assert CONFIG["repository"]["url"] in pyproject


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_colab_install_cell_points_at_this_repository_and_release(path):
    nb = nbformat.read(path, as_version=4)
    setup = next((c for c in nb.cells if c.cell_type == "code" and "google.colab" in _source(c)), None)
    assert setup is not None, f"{path.name} has no Colab setup cell"
    src = _source(setup)
    url = CONFIG["repository"]["url"]
    match = re.search(r"git\+(\S+?)@v([\w.]+)", src)
    assert match, f"{path.name}: the setup cell does not install from git with a pinned tag"
    assert match.group(1) == url, f"{path.name}: installs from {match.group(1)}, config says {url}"
    assert match.group(2) == companion.__version__, (
        f"{path.name}: pinned to v{match.group(2)}, the package is {companion.__version__}")
    assert 'if "google.colab" in sys.modules' in src, "the install must run only in Colab"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is setup, "the setup cell must be the first code cell"
    # %pip (not subprocess) so that Colab notices the install and offers a restart.
    assert re.search(r'^    %pip install -q "collapse-scaling-companion @ git\+', src, re.M), (
        f"{path.name}: the Colab install must use %pip")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_takes_its_seed_and_threads_from_the_environment(path):
    """One seed knob (COMPANION_SEED) and one thread knob (COMPANION_THREADS) per chapter:
    the setup cell calls set_seed() and set_threads(...) and no cell sets threads itself."""
    nb = nbformat.read(path, as_version=4)
    code = [_source(c) for c in nb.cells if c.cell_type == "code"]
    assert re.search(r"^SEED = set_seed\(\)", code[0], re.M), f"{path.name}: setup must call set_seed()"
    assert re.search(r"^set_threads\(", code[0], re.M), f"{path.name}: setup must call set_threads()"
    for src in code:
        assert "torch.set_num_threads" not in src, f"{path.name}: use set_threads in the setup cell"
        assert not re.search(r"set_seed\(\d", src), f"{path.name}: seeds derive from SEED, not literals"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_solution_cells_fold_in_colab(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            assert cell.metadata.get("cellView") == "form", f"{path.name}: solution cell without cellView form"
            assert _source(cell).startswith("# @title Solution"), f"{path.name}: solution without # @title"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_only_checked_cells_carry_reference_outputs(path):
    """nbval compares a checked cell only against a stored, executed output: the checked
    cells must carry theirs (recorded by tools/record_checked_outputs.py), every other cell
    is committed empty."""
    nb = nbformat.read(path, as_version=4)
    checked = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if _source(cell).lstrip().startswith("# NBVAL_CHECK_OUTPUT"):
            checked += 1
            assert cell.execution_count is not None and cell.outputs, (
                f"{path.name} cell {i} is checked but has no recorded output: run make record-outputs")
            kinds = {o.output_type for o in cell.outputs}
            assert kinds <= {"stream", "execute_result"}, f"{path.name} cell {i}: only text is recorded"
        else:
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name} cell {i} has stored outputs: only checked cells keep theirs")
    assert checked, f"{path.name} has no checked cell"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_pattern(path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(_source(c) for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(_source(c) for c in nb.cells if c.cell_type == "code")
    assert re.match(r"# Chapter \d+:", _source(nb.cells[0])), "the first cell is the title"
    for heading in ("## Learning objectives", "## Prerequisites", "## Summary", "## References"):
        assert heading in markdown, f"{path.name} has no '{heading}' section"
    assert "{bibliography}" in markdown
    assert "# NBVAL_CHECK_OUTPUT" in code, "key numbers must sit in checked cells"
    assert ".show()" in code, "the chapter has no explorer"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_follow_the_convention(path):
    nb = nbformat.read(path, as_version=4)
    registry = load_all()
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert len(solutions) >= 3, f"{path.name} has {len(solutions)} graded exercises, needs 3"
    markdown = "\n".join(_source(c) for c in nb.cells if c.cell_type == "markdown")
    checked = {c.metadata.get("exercise") for c in checks}
    for cell in solutions:
        ex_id, points = cell.metadata.get("exercise"), cell.metadata.get("points")
        assert ex_id and isinstance(points, int) and points > 0, f"solution cell without id/points: {cell.source[:60]}"
        assert f":label: ex-{ex_id}" in markdown, f"no exercise block labelled ex-{ex_id}"
        assert re.search(r"\{solution-start\}\s*ex-" + re.escape(ex_id), markdown), f"no solution block for {ex_id}"
        assert ex_id in checked, f"no check cell for {ex_id}"
        assert ex_id in registry, f"{ex_id} has no registered check in companion.exercises"
        assert registry[ex_id]["points"] == points, f"{ex_id}: notebook and check disagree on points"
        assert _source(cell).startswith("# @title Solution"), "solution cells fold in Colab"
    assert markdown.count("{solution-start}") == markdown.count("{solution-end}")
    assert markdown.count("{exercise-start}") == markdown.count("{exercise-end}")


def test_bibliography_has_unique_keys_and_every_citation_resolves():
    keys = _bib_keys()
    duplicated = {k for k in keys if keys.count(k) > 1}
    assert not duplicated, f"duplicate BibTeX keys: {duplicated}"
    sources = [p.read_text() for p in BOOK.glob("*.md")] + [
        "\n".join(_source(c) for c in nbformat.read(p, as_version=4).cells) for p in CHAPTERS]
    cited = set()
    for text in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited.update(k.strip() for k in group.split(","))
    missing = cited - set(keys)
    assert not missing, f"cited but not in references.bib: {sorted(missing)}"


def test_api_page_documents_every_chapter_module():
    api = (BOOK / "api.md").read_text()
    modules = {p.stem for p in (ROOT / "companion").glob("*.py") if not p.stem.startswith("_")}
    for module in modules - {"coursework"}:
        assert f"automodule:: companion.{module}" in api, f"companion.{module} missing from book/api.md"


def test_readme_names_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def _contributing_setup_template():
    """The setup cell's template: the first python block after CONTRIBUTING's 'the setup cell'."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    start = text.index("the setup cell")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block, "CONTRIBUTING.md has no python block for the setup cell"
    return [line.strip() for line in block.group(1).splitlines()]


def _code_lines(lines):
    """Statements without comments and blank lines (the shape of a cell)."""
    out = []
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line.strip()) if not line.strip().startswith("#") else ""
        if line:
            out.append(line)
    return out


def _template_pattern(line):
    """A template line as a regex: ``<topic>`` is any module (with an alias), and
    ``set_threads(1)`` stands for ``set_threads(<int>)`` or ``set_threads()``."""
    pattern = re.escape(line).replace(re.escape("<topic>"), r"\w+(?: as \w+)?")
    pattern = pattern.replace(re.escape("set_threads(1)"), r"set_threads\(\d*\)")
    return re.compile(pattern + r"$")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_setup_cell_has_the_shape_contributing_documents(path):
    """CONTRIBUTING matches the code: the setup cell of every chapter has the template's
    statements in the template's order (comments aside); it may import more from companion."""
    template = [_template_pattern(line) for line in _code_lines(_contributing_setup_template())]
    nb = nbformat.read(path, as_version=4)
    cell = _code_lines(_source(next(c for c in nb.cells if c.cell_type == "code")).splitlines())
    k = 0
    for line in cell:
        if k < len(template) and template[k].match(line):
            k += 1
        else:
            assert re.match(r"(from companion[\w.]* import |import companion)", line), (
                f"{path.name}: setup cell line {line!r} is not in CONTRIBUTING's template")
    assert k == len(template), (
        f"{path.name}: the setup cell lacks the template line {template[k].pattern!r} (CONTRIBUTING.md, step 3)")


def test_contributing_thread_statement_matches_set_threads():
    """CONTRIBUTING says what set_threads does by default; the code must agree."""
    import inspect

    from companion.training import set_threads

    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert "torch.set_num_threads(1)" not in text
    assert "set_threads() for min(2, CPUs)" in text
    assert "min(2, os.cpu_count() or 1)" in inspect.getsource(set_threads)
