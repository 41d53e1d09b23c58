"""Docstrings a researcher can cite and run (scikit-learn's ``PCA`` docstring is the model).

- Every ``References`` section lists its papers as ``- key: Authors (year), "Title".``, and
  each line agrees with the book's bibliography (``python tools/cite.py KEY`` prints it).
- Every function or class of a chapter module that a chapter calls cites its paper (or is
  listed in ``NO_PAPER`` with the reason) and, unless it trains a model or draws a figure,
  has an ``Examples`` section; the examples run as doctests in ``make unit``.
"""

import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
sys.path.insert(0, str(ROOT / "tools"))
import api_links  # noqa: E402
import cite  # noqa: E402

BIB = cite.entries()
CHAPTER_MODULES = ("neural_collapse", "entropy", "sae", "scaling", "rl")

#: Chapter-called entries that teach no paper's method (utilities, containers), with why.
NO_PAPER = {
    "companion.rl.ModularTask": "a toy verifiable task built for the chapter",
    "companion.rl.GRUPolicy": "a tiny policy for the toy task, no paper's model",
    "companion.rl.seed_values": "a utility that reads History objects",
    "companion.rl.supervised_warm_start": "plain cross-entropy on correct answers before RL",
    "companion.sae.reconstruct": "a utility: runs an SAE over data in batches",
    "companion.sae.format_contexts": "formats top_contexts' output as text or HTML",
}
#: Chapter-called entries without an Examples section beyond the rule (train_*, plot_*,
#: *_explorer), with why.
NO_EXAMPLE = {
    "companion.entropy.learning_rate_sweep": "trains a grid of transformers",
    "companion.rl.supervised_warm_start": "trains a policy",
    "companion.sae.load_activations": "runs MiniLM over the corpus (minutes on a cold cache)",
    "companion.sae.spliced_similarity": "loads the MiniLM weights",
    "companion.sae.token_view": "loads the MiniLM weights",
    "companion.sae.toy_setup": "trains the toy model",
}


def _public_objects():
    """(qualified name, object) for every public function, class and method of the package."""
    import importlib
    import pkgutil

    import companion

    out = []
    for info in pkgutil.walk_packages(companion.__path__, "companion."):
        if info.name.endswith("__main__"):
            continue  # running it is the CLI
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            out.append((f"{module.__name__}.{name}", obj))
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                        out.append((f"{module.__name__}.{name}.{attr}", member))
    return out


def _section(doc: str, title: str) -> str | None:
    """The text of a numpy-style section, or None."""
    match = re.search(rf"^{title}\n-{{{len(title)}}}\n(.*?)(?=^\S[^\n]*\n-{{3,}}\n|\Z)", doc, re.M | re.S)
    return None if match is None else match.group(1)


def _reference_lines(text: str) -> list[str]:
    """The bullets of a References section, continuation lines joined."""
    bullets = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("- "):
            bullets.append(line)
        elif bullets:
            bullets[-1] += " " + line
        else:
            bullets.append(line)
    return bullets


def _chapter_calls():
    """Top-level names of the chapter modules that a chapter calls."""
    names = set()
    for scan in api_links.scan_book(ROOT):
        for name in scan.calls:
            parts = name.split(".")
            if len(parts) >= 3 and parts[0] == "companion" and parts[1] in CHAPTER_MODULES:
                names.add(".".join(parts[:3]))
    return sorted(names)


PUBLIC = _public_objects()
CALLED = _chapter_calls()


@pytest.mark.parametrize("qualname, obj", [(q, o) for q, o in PUBLIC if "References" in (inspect.getdoc(o) or "")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_reference_lines_agree_with_the_bibliography(qualname, obj):
    section = _section(inspect.getdoc(obj), "References")
    assert section is not None and section.strip(), f"{qualname}: empty or malformed References section"
    for bullet in _reference_lines(section):
        match = re.match(r"- (\w+): ", bullet)
        assert match, f"{qualname}: reference {bullet!r} is not '- key: Authors (year), \"Title\".'"
        key = match.group(1)
        assert key in BIB, f"{qualname}: {key} is not in book/references.bib"
        assert bullet == cite.line(key, BIB), (
            f"{qualname}: the line for {key} differs from the bibliography; use `python tools/cite.py {key}`")


def _resolve(name):
    import importlib

    module, attr = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("name", CALLED)
def test_chapter_functions_cite_their_paper(name):
    if name in NO_PAPER:
        return
    doc = inspect.getdoc(_resolve(name)) or ""
    assert _section(doc, "References"), f"{name} is called by a chapter but cites no paper (References section)"


def _needs_example(name: str) -> bool:
    short = name.rsplit(".", 1)[-1]
    return not (short.startswith(("train_", "plot_")) or short.endswith("_explorer") or name in NO_EXAMPLE)


@pytest.mark.parametrize("name", [n for n in CALLED if _needs_example(n)])
def test_chapter_functions_have_examples(name):
    doc = inspect.getdoc(_resolve(name)) or ""
    assert ">>>" in (_section(doc, "Examples") or ""), f"{name} is called by a chapter but has no Examples section"


def _rst_warnings(qualname, obj) -> list[str]:
    """Warnings docutils gives on the docstring as napoleon turns it into reStructuredText
    (the API page's build is strict, so each would fail ``make book-strict``). Sphinx's
    roles and directives stand in as plain docutils ones, registered for this parse only
    (another test may have loaded Sphinx's, which need a build environment)."""
    import docutils.core
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives, roles
    from docutils.parsers.rst.directives import body
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    class SphinxOnly(Directive):  # Sphinx's own directives: content parsed, options ignored
        optional_arguments, final_argument_whitespace, has_content = 10, True, True
        option_spec = type("AnyOption", (dict,), {"__missing__": lambda self, key: directives.unchanged,
                                                  "__contains__": lambda self, key: True})()

        def run(self):
            node = nodes.container()
            self.state.nested_parse(self.content, self.content_offset, node)
            return [node]

    saved = dict(directives._directives), dict(roles._roles)
    try:
        for role in ("class", "func", "meth", "attr", "mod", "data", "ref", "cite", "obj", "exc", "math",
                     "py:func", "py:class", "py:meth", "py:mod", "doc", "numref", "eq"):
            roles.register_generic_role(role, nodes.literal)
        for name in ("attribute", "method", "function", "seealso", "versionadded", "versionchanged",
                     "deprecated", "autosummary", "plot", "py:attribute"):
            directives.register_directive(name, SphinxOnly)
        directives.register_directive("math", body.MathBlock)
        directives.register_directive("code-block", body.CodeBlock)
        directives.register_directive("sourcecode", body.CodeBlock)
        what = "class" if inspect.isclass(obj) else "function"
        text = str(NumpyDocstring(inspect.getdoc(obj) or "", Config(napoleon_use_param=True), what=what))
        messages = []

        class Collect:
            def write(self, message):
                messages.append(message.strip())

        docutils.core.publish_doctree(text, settings_overrides={"warning_stream": Collect(), "report_level": 2,
                                                                 "halt_level": 5})
    finally:
        directives._directives.clear()
        directives._directives.update(saved[0])
        roles._roles.clear()
        roles._roles.update(saved[1])
    return [m for m in messages if m]


@pytest.mark.parametrize("qualname, obj", PUBLIC, ids=lambda v: v if isinstance(v, str) else "")
def test_docstrings_render_without_warnings(qualname, obj):
    warnings = _rst_warnings(qualname, obj)
    assert not warnings, f"{qualname}: " + "\n".join(warnings)
