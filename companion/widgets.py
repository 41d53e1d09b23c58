"""Interactive explorers, live with ipywidgets and precomputed for the static book.

Every chapter's explorer is an :class:`Explorer`: a function ``draw(**params)`` that returns
a matplotlib Figure (or ``(figure, text)``), and a set of :class:`Choice` controls. One object
serves the three ways the course is read:

- in Jupyter or Colab, :meth:`Explorer.show` builds ipywidgets controls that redraw the
  figure live (the default state is drawn first);
- in the online book there is no kernel, so when the book is built (``COMPANION_EXPLORER=static``,
  set by ``make book``) :meth:`Explorer.show` renders every combination of one or two
  chosen controls at build time and ships a small self-contained HTML/JavaScript slider
  that switches between the precomputed frames in the reader's browser;
- :meth:`Explorer.figure` draws any state as an ordinary figure (for tests and for text).

The chapter explorers themselves live next to the science they show: each chapter module
has a ``*_explorer()`` function returning an :class:`Explorer`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["Choice", "Explorer", "explorer_mode"]


@dataclass
class Choice:
    """A control: a finite list of values, a default, a label.

    Numbers get a slider, strings and booleans a row of toggle buttons.
    """

    values: Sequence[Any]
    default: Any = None
    label: str | None = None
    fmt: str = "{}"
    _index: int = field(init=False, default=0)

    def __post_init__(self):
        if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__iter__"):
            raise TypeError(f"values must be a sequence of values, got {self.values!r}")
        self.values = list(self.values)
        if not self.values:
            raise ValueError("values must not be empty")
        if self.default is None:
            self.default = self.values[len(self.values) // 2]
        if self.default not in self.values:
            raise ValueError(f"default {self.default!r} is not among values {self.values}")
        self._index = self.values.index(self.default)

    def text(self, value) -> str:
        """The label of one of the values (``fmt.format(value)``)."""
        if not any(value is v or (type(value) is type(v) and value == v) for v in self.values):
            raise ValueError(f"value must be one of {self.values}, got {value!r}")
        return self.fmt.format(value)


def explorer_mode() -> str:
    """``"static"`` when the book is being built (``COMPANION_EXPLORER=static``), else ``"live"``."""
    mode = os.environ.get("COMPANION_EXPLORER", "live").strip().lower()
    if mode not in {"live", "static"}:
        raise ValueError(f"COMPANION_EXPLORER must be 'live' or 'static', got {mode!r}")
    return mode


def _figure_png(fig, dpi: int) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Explorer:
    """An explorer: ``draw(**params)`` plus the controls that set ``params``.

    Parameters
    ----------
    draw : callable
        ``draw(**params)`` returns a matplotlib Figure, or ``(Figure, str)`` where the string
        is a short summary of the numbers shown (printed under the figure).
    controls : dict of str -> Choice
        One control per keyword argument of ``draw``.
    title : str
        Shown above the controls.
    precompute : sequence of str, optional
        The one or two controls the static book offers as sliders (the others stay at their
        defaults). Default: the first control.
    dpi : int
        Resolution of precomputed frames.
    """

    def __init__(self, draw: Callable, controls: dict[str, Choice], *, title: str = "",
                 precompute: Sequence[str] | None = None, dpi: int = 80):
        if not callable(draw):
            raise TypeError(f"draw must be callable, got {type(draw).__name__}")
        if not isinstance(controls, dict) or not controls or not all(isinstance(c, Choice) for c in controls.values()):
            raise TypeError("controls must be a non-empty dict of name -> Choice")
        if isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 1000:
            raise (TypeError if isinstance(dpi, bool) or not isinstance(dpi, int) else ValueError)(
                f"dpi must be an int in [10, 1000], got {dpi!r}")
        self.draw = draw
        self.controls = dict(controls)
        self.title = title
        precompute = list(precompute) if precompute is not None else [next(iter(self.controls))]
        unknown = [p for p in precompute if p not in self.controls]
        if unknown or not 1 <= len(precompute) <= 2:
            raise ValueError(f"precompute must name one or two of {list(self.controls)}, got {precompute}")
        self.precompute = precompute
        self.dpi = dpi

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: c.default for name, c in self.controls.items()}

    def render(self, **overrides):
        """Draw one state: returns ``(figure, summary_text)``."""
        unknown = set(overrides) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; controls are {list(self.controls)}")
        params = {**self.defaults, **overrides}
        out = self.draw(**params)
        if isinstance(out, tuple):
            fig, text = out
        else:
            fig, text = out, ""
        return fig, text

    def figure(self, **overrides):
        """The figure of one state (defaults unless overridden)."""
        return self.render(**overrides)[0]

    # -- live ---------------------------------------------------------------------------
    def widget(self):
        """ipywidgets controls with a live figure (needs a running kernel)."""
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        sliders = {}
        for name, choice in self.controls.items():
            label = choice.label or name
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in choice.values)
            options = [(choice.text(v), v) for v in choice.values]
            if numeric:
                sliders[name] = widgets.SelectionSlider(options=options, value=choice.default,
                                                        description=label, continuous_update=False,
                                                        style={"description_width": "initial"})
            else:
                sliders[name] = widgets.ToggleButtons(options=options, value=choice.default,
                                                      description=label,
                                                      style={"description_width": "initial"})
        out = widgets.Output()

        def redraw(**params):
            with out:
                out.clear_output(wait=True)
                fig, text = self.render(**params)
                display(fig)
                plt.close(fig)
                if text:
                    print(text)

        widgets.interactive_output(redraw, sliders)
        children = ([widgets.HTML(f"<b>{html.escape(self.title)}</b>")] if self.title else [])
        return widgets.VBox(children + [widgets.VBox(list(sliders.values())), out])

    # -- static ---------------------------------------------------------------------------
    def precomputed_html(self) -> str:
        """A self-contained HTML/JS explorer over the precomputed frames (no kernel needed)."""
        from .training import progress

        names = self.precompute
        grids = [self.controls[n].values for n in names]
        frames, texts = {}, {}
        combos = list(itertools.product(*[range(len(g)) for g in grids]))
        for combo in progress(combos, desc="precomputing explorer"):
            params = {n: grids[k][i] for k, (n, i) in enumerate(zip(names, combo))}
            fig, text = self.render(**params)
            key = ",".join(str(i) for i in combo)
            frames[key] = _figure_png(fig, self.dpi)
            texts[key] = text
        uid = "companion-explorer-" + hashlib.sha1((self.title + repr(names)).encode()).hexdigest()[:10]
        start = ",".join(str(self.controls[n]._index) for n in names)
        rows = []
        for n in names:
            c = self.controls[n]
            labels = json.dumps([c.text(v) for v in c.values])
            rows.append(
                f'<label style="display:block;margin:0.2em 0">{html.escape(c.label or n)}: '
                f'<input type="range" min="0" max="{len(c.values) - 1}" step="1" value="{c._index}" '
                f'data-param="{html.escape(n)}" data-labels="{html.escape(labels)}" '
                f'style="vertical-align:middle;width:14em"> '
                f'<span class="companion-explorer-value">{html.escape(c.text(c.default))}</span></label>')
        fixed = [f"{html.escape(c.label or n)} = {html.escape(c.text(c.default))}"
                 for n, c in self.controls.items() if n not in names]
        fixed_note = (f'<div style="font-size:0.85em;color:#555">Fixed in this precomputed view: '
                      f'{"; ".join(fixed)}. Run the notebook for every control.</div>') if fixed else ""
        title = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        return f"""<div class="companion-explorer" id="{uid}">
{title}
<div class="companion-explorer-controls">{''.join(rows)}</div>
{fixed_note}
<img class="companion-explorer-frame" alt="{html.escape(self.title or 'explorer')}" src="{frames[start]}" style="max-width:100%">
<pre class="companion-explorer-text" style="white-space:pre-wrap">{html.escape(texts[start])}</pre>
<script>
(function() {{
  var root = document.getElementById("{uid}");
  var frames = {json.dumps(frames)};
  var texts = {json.dumps(texts)};
  var inputs = root.querySelectorAll("input[type=range]");
  function update() {{
    var key = Array.prototype.map.call(inputs, function(i) {{ return i.value; }}).join(",");
    root.querySelector("img.companion-explorer-frame").src = frames[key];
    root.querySelector("pre.companion-explorer-text").textContent = texts[key];
    inputs.forEach(function(i) {{
      var labels = JSON.parse(i.getAttribute("data-labels"));
      i.parentNode.querySelector(".companion-explorer-value").textContent = labels[i.value];
    }});
  }}
  inputs.forEach(function(i) {{ i.addEventListener("input", update); }});
}})();
</script>
</div>"""

    def show(self, mode: str | None = None):
        """Display the explorer: live widgets, or the precomputed HTML when building the book.

        ``mode`` is ``"live"`` or ``"static"``; by default :func:`explorer_mode` decides.
        """
        from IPython.display import HTML, display

        mode = explorer_mode() if mode is None else mode
        if mode == "static":
            display(HTML(self.precomputed_html()))
        elif mode == "live":
            display(self.widget())
        else:
            raise ValueError(f"mode must be 'live' or 'static', got {mode!r}")
