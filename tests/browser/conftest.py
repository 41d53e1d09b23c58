"""Print where the browser test left its screenshots (pytest captures the tests' own output)."""

import sys
from pathlib import Path


def pytest_terminal_summary(terminalreporter):
    module = next((m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None)
                   and Path(m.__file__).resolve() == Path(__file__).with_name("test_pages.py").resolve()),
                  None)
    folder = getattr(module, "SCREENSHOTS", None)
    shots = sorted(Path(folder).glob("*.png")) if folder and Path(folder).is_dir() else []
    if shots:
        terminalreporter.write_sep("-", "browser test screenshots")
        terminalreporter.write_line(f"{len(shots)} chapter screenshot(s) in {folder}:")
        for shot in shots:
            terminalreporter.write_line(f"  {shot.name}")
