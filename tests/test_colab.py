"""Colab: the pinned set we test against, pyproject's bounds against it, and the explorer
widgets with whatever ipywidgets is installed (ipywidgets 8 in `make unit`; Colab's 7.7.1 in
`make colab`, which runs the tests named *widget* here in its Colab-like venv).

The resolver check itself (pip against all of Colab's pins) needs the package index and runs
in `make colab-pins`; these tests are offline.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check_pins = _load("check_pins", ROOT / "tools" / "colab" / "check_pins.py")
model_switch = _load("model_switch", ROOT / "tools" / "colab" / "model_switch.py")
PINS = check_pins.read_pins()


@pytest.mark.parametrize("path", [check_pins.PINS, check_pins.GPU_PINS], ids=lambda p: p.name)
def test_pin_lists_say_where_they_came_from_and_when(path):
    head = path.read_text().split("# ---", 1)[0]
    assert "github.com/googlecolab/backend-info" in head
    assert re.search(r"commit [0-9a-f]{40} of \d{4}-\d{2}-\d{2}", head)
    pins = check_pins.read_pins(path)
    assert pins["ipython"]["version"] == "7.34.0" and pins["ipywidgets"]["version"] == "7.7.1"


def test_pin_list_reads_colabs_versions():
    assert PINS["ipython"]["version"] == "7.34.0"
    assert PINS["ipywidgets"]["version"] == "7.7.1"
    assert PINS["traitlets"]["version"] == "5.7.1"
    # URL installs take their version from the wheel's file name
    assert PINS["torch"]["version"].startswith("2.") and PINS["torch"]["url"]
    assert PINS["google-colab"]["version"] == "1.0.0"
    assert check_pins.normalize("typing_extensions") == "typing-extensions" == check_pins.normalize("Typing.Extensions")


def test_pyproject_bounds_admit_colabs_preinstalled_versions():
    assert check_pins.static_conflicts(check_pins.project_dependencies(), PINS) == []


def test_static_check_names_a_bound_that_excludes_a_pin():
    problems = check_pins.static_conflicts(["ipython>=8.0", "ipywidgets>=8", "numpy>=1.24"], PINS)
    assert len(problems) == 2
    assert "ipython>=8.0" in problems[0] and "7.34.0" in problems[0]


def test_standin_wheel_names_the_pinned_build(tmp_path):
    import zipfile

    wheel = check_pins._standin_wheel(tmp_path, "torch", "2.11.0+cpu")
    assert wheel.name == "torch-2.11.0+cpu-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("torch-2.11.0+cpu.dist-info/METADATA").decode()
    assert "Name: torch\n" in meta and "Version: 2.11.0+cpu\n" in meta and "Requires-Dist" not in meta


def test_resolver_python_is_colabs_minor_version(monkeypatch, tmp_path):
    """pip evaluates environment markers for the Python that runs it: the resolver looks for
    one of Colab's version (this one's version here), and finds none of a version not installed."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = check_pins.colab_python(here)
    assert found is not None
    import subprocess

    out = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == here
    monkeypatch.setenv("COLAB_PINS_PYTHON", str(tmp_path / "no-such-python"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    assert check_pins.colab_python("2.99") is None


def test_chapter_3_has_one_model_switch_that_model_switch_py_sets():
    """`make colab` runs chapter 3 with its switch set to a tiny GPT-2 (model_switch.py); here,
    offline: the switch is one line in one cell, and no other code cell names the model or a layer."""
    import nbformat

    nb = nbformat.read(model_switch.CHAPTER, as_version=4)
    cells = model_switch.switch_cells(nb)
    assert len(cells) == 1
    others = [c for c in nb.cells if c.cell_type == "code" and c is not cells[0]]
    for cell in others:
        assert "MINILM" not in cell.source and not re.search(r"\blayer\s*=\s*\d", cell.source), cell.get("id")
    before = cells[0].source
    model_switch.set_switch(nb, "/tmp/tiny-gpt2", 1)
    assert cells[0].source == before.replace("MODEL, LAYER = sae.MINILM, 3", "MODEL, LAYER = '/tmp/tiny-gpt2', 1", 1)


def test_python_versions_declared():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in project["classifiers"]


def test_only_lower_bounds_for_numpy_and_torch():
    for dep in check_pins.project_dependencies():
        name = re.split(r"[<>=!~ ;\[]", dep)[0]
        if name in {"numpy", "torch"}:
            assert re.fullmatch(rf"{name}>=[\d.]+", dep), f"{dep}: Colab ships its own {name}"


def test_explorer_widget_builds_and_redraws_with_the_installed_ipywidgets():
    """Every kind of control (numeric slider, string and boolean toggles) moves and redraws."""
    widgets = pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from companion.widgets import Choice, Explorer

    calls = []

    def draw(width, kind, log):
        calls.append((width, kind, log))
        fig, ax = plt.subplots()
        ax.plot([0, width])
        return fig, f"width={width} kind={kind} log={log}"

    explorer = Explorer(draw, {"width": Choice([1, 2, 4], default=2),
                               "kind": Choice(["relu", "topk"], default="relu"),
                               "log": Choice([False, True], default=False)}, title="test")
    box = explorer.widget()
    assert isinstance(box, widgets.VBox)
    controls = {c.description: c for c in box.children[-2].children}
    assert isinstance(controls["width"], widgets.SelectionSlider)
    assert isinstance(controls["kind"], widgets.ToggleButtons)
    assert calls and calls[-1] == (2, "relu", False), "the default state is drawn first"
    controls["width"].value = 4
    assert calls[-1] == (4, "relu", False)
    controls["kind"].value = "topk"
    assert calls[-1] == (4, "topk", False)
    controls["log"].value = True
    assert calls[-1] == (4, "topk", True)
    plt.close("all")


def test_readme_names_the_chapters_that_train_on_a_gpu():
    """README's Colab section says which chapters use a GPU: exactly those whose code passes
    the setup cell's DEVICE to a training function."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"chapters ([\d, and]+?) train their models on it", readme.replace("\n", " "))
    assert m, "README's Colab section should say which chapters train on a GPU"
    said = {int(n) for n in re.findall(r"\d+", m[1])}
    uses = set()
    for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        import nbformat

        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if re.search(r"device=DEVICE\b", code):
            uses.add(int(path.name[:2]))
    assert said == uses, f"README says chapters {sorted(said)} use the GPU; the code passes DEVICE in {sorted(uses)}"
