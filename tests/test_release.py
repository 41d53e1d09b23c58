"""One release everywhere: the version, every chapter's setup-cell tag and the Colab links
agree (so the notebook Colab opens and the package it installs come from the same tag), and
tools/release.py moves them all together (tried on a copy of the repository)."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
release = importlib.util.module_from_spec(spec)
sys.modules["release"] = release
spec.loader.exec_module(release)

import companion  # noqa: E402


def test_version_setup_cells_and_colab_links_agree():
    assert release.disagreements(ROOT) == []
    version = companion.__version__
    assert re.search(rf'^version = "{re.escape(version)}"', (ROOT / "pyproject.toml").read_text(), re.M)
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"colab\.research\.google\.com/github/\S+?/blob/([^/\s]+)/", readme)
    assert links and set(links) == {f"v{version}"}, f"README's Colab links open {set(links)}"


def _copy_repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel in ["pyproject.toml", "_config.yml", "README.md", "CONTRIBUTING.md", "companion/__init__.py",
                "book/intro.md", *[str(p.relative_to(ROOT)) for p in release.chapters(ROOT)]]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, root / rel)
    # the copy starts from an agreeing state, whatever the working tree is in
    release.release(companion.__version__, root, git=False)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], check=True)
    return root


def _cells(path):
    nb = nbformat.read(path, as_version=4)
    return [(c.get("id"), c.cell_type, c.source, json.dumps(c.metadata, sort_keys=True)) for c in nb.cells]


def test_release_moves_version_tags_and_links_together_and_tags(tmp_path):
    root = _copy_repository(tmp_path)
    before = {p.name: _cells(p) for p in release.chapters(root)}
    assert release.main(["0.9.1", "--root", str(root)]) == 0
    assert release.disagreements(root) == []
    assert 'version = "0.9.1"' in (root / "pyproject.toml").read_text()
    assert '__version__ = "0.9.1"' in (root / "companion" / "__init__.py").read_text()
    assert re.search(r"^  branch: v0\.9\.1$", (root / "_config.yml").read_text(), re.M)
    assert "/blob/v0.9.1/book/" in (root / "README.md").read_text()
    for path in release.chapters(root):
        after = _cells(path)
        changed = [i for i, (a, b) in enumerate(zip(before[path.name], after)) if a != b]
        assert len(after) == len(before[path.name]) and len(changed) == 1, path.name
        assert "@v0.9.1\"" in after[changed[0]][2] and "google.colab" in after[changed[0]][2]
        assert after[changed[0]][0] == before[path.name][changed[0]][0], "cell ids are kept"
    git = ["git", "-C", str(root)]
    tags = subprocess.run([*git, "tag"], capture_output=True, text=True, check=True).stdout.split()
    assert tags == ["v0.9.1"]
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    assert status == "", "the release commits every file it changed"
    tagged = subprocess.run([*git, "show", "v0.9.1:pyproject.toml"], capture_output=True, text=True).stdout
    assert 'version = "0.9.1"' in tagged, "the tag points at the release commit"
    with pytest.raises(SystemExit, match="exists"):
        release.main(["0.9.1", "--root", str(root)])


def test_dry_run_changes_nothing(tmp_path, capsys):
    root = _copy_repository(tmp_path)
    texts = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert release.main(["1.0.0", "--dry-run", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "@v1.0.0" in out and "would change" in out
    assert texts == {p: p.read_bytes() for p in texts}
    assert subprocess.run(["git", "-C", str(root), "tag"], capture_output=True, text=True).stdout == ""


def test_release_refuses_uncommitted_changes_and_bad_versions(tmp_path):
    root = _copy_repository(tmp_path)
    with (root / "README.md").open("a") as f:
        f.write("\nlocal edit\n")
    with pytest.raises(SystemExit, match="uncommitted"):
        release.main(["0.3.0", "--root", str(root)])
    with pytest.raises(SystemExit, match="version must"):
        release.main(["v0.3", "--root", str(root), "--no-git"])


def test_check_reports_a_setup_cell_left_behind(tmp_path):
    root = _copy_repository(tmp_path)
    nb = release.chapters(root)[0]
    nb.write_text(nb.read_text().replace(f"@v{companion.__version__}", "@v0.0.1"))
    assert release.main(["--check", "--root", str(root)]) == 1
    assert any(nb.name in p for p in release.disagreements(root))
