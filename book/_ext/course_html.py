"""Small fixes to the HTML that Jupyter Book 1.x writes, so that pages load cleanly offline.

Registered in ``_config.yml`` under ``sphinx.local_extensions``. One fix:

- Inline ``<script>`` blocks added by an extension after the HTML builder is initialised
  (sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector) reach the
  page twice under Sphinx 7.4: once as registered with the builder (filename ``None``) and
  once re-read from the registry (filename ``""``), which the builder does not recognise
  as the same script. The second ``const`` declaration then throws
  ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` in every reader's
  console. This extension drops the exact duplicates from each page's script list.

The browser test (``tests/browser/test_pages.py``) fails if any page logs a console error,
so it guards this fix.
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of several identical entries in the page's ``script_files``."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    # Late priority: after every extension that adds scripts while the page is assembled.
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.1"}
