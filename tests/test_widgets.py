import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from companion.widgets import Choice, Explorer, explorer_mode


def _draw(a, b, kind):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, a * b])
    ax.set_title(kind)
    return fig, f"a*b = {a * b}"


def _explorer():
    return Explorer(_draw, {"a": Choice([1, 2, 3], default=2), "b": Choice([10, 20]),
                            "kind": Choice(["x", "y"])}, title="demo", precompute=["a", "b"])


def test_choice_validates_default():
    assert Choice([1, 2, 3]).default == 2
    with pytest.raises(ValueError, match="default"):
        Choice([1, 2], default=5)
    with pytest.raises(ValueError, match="empty"):
        Choice([])


def test_render_uses_defaults_and_overrides():
    ex = _explorer()
    fig, text = ex.render()
    assert text == "a*b = 40"  # a=2, b=20 (middle of [10, 20] is index 1)
    plt.close(fig)
    assert ex.render(a=3)[1] == "a*b = 60"
    with pytest.raises(ValueError, match="unknown control"):
        ex.render(c=1)


def test_precomputed_html_has_one_frame_per_combination_and_starts_at_default():
    ex = _explorer()
    page = ex.precomputed_html()
    frames = re.search(r"var frames = (\{.*?\});", page).group(1)
    assert frames.count("data:image/png;base64,") == 3 * 2
    assert page.count('type="range"') == 2
    texts = re.search(r"var texts = (\{.*?\});", page).group(1)
    assert '"1,1": "a*b = 40"' in texts
    assert "a*b = 40" in page.split("<script>")[0]  # the default state is shown without JS
    assert "kind = y" in page or "kind = x" in page  # the fixed control is named


def test_explorer_validates_precompute_and_controls():
    with pytest.raises(ValueError, match="precompute"):
        Explorer(_draw, {"a": Choice([1])}, precompute=["zzz"])
    with pytest.raises(TypeError, match="controls"):
        Explorer(_draw, {"a": [1, 2]})


def test_live_widget_builds(monkeypatch):
    ipywidgets = pytest.importorskip("ipywidgets")
    box = _explorer().widget()
    assert isinstance(box, ipywidgets.VBox)
    monkeypatch.setenv("COMPANION_EXPLORER", "static")
    assert explorer_mode() == "static"
    monkeypatch.setenv("COMPANION_EXPLORER", "bogus")
    with pytest.raises(ValueError, match="COMPANION_EXPLORER"):
        explorer_mode()
