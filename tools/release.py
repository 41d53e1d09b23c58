"""Cut a release: one version everywhere, so that the notebook Colab opens and the package its
setup cell installs come from the same git tag.

    python tools/release.py 0.2.0 --dry-run   # show every change, touch nothing
    python tools/release.py 0.2.0             # rewrite, commit those files, tag v0.2.0
    python tools/release.py 0.2.0 --no-git    # rewrite only (commit and tag yourself)
    python tools/release.py --check           # exit 1 unless everything below agrees

What it sets to the version ``X`` (tests/test_release.py checks they agree):

- ``pyproject.toml`` ``version = "X"`` and ``companion/__init__.py`` ``__version__ = "X"``;
- every chapter's setup cell: ``%pip install "collapse-scaling-companion @ git+<repository>@vX"``
  (only that URL is rewritten, byte for byte; cell ids and everything else stay);
- the Colab links: ``_config.yml`` ``repository.branch: vX`` (Jupyter Book's launch button
  opens ``.../blob/<branch>/book/NN_x.ipynb``) and the ``.../blob/vX/...`` links in README.md;
- the setup-cell template in CONTRIBUTING.md and the "version X" of the citation lines in
  README.md and book/intro.md.

Then (without ``--no-git``) it commits exactly the files it changed and creates the annotated
tag ``vX``; push both (``git push origin main vX``) before announcing the release. It refuses
to run when one of those files has uncommitted changes or the tag exists.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.compile(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?")


def repository_url(root: Path) -> str:
    m = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", (root / "_config.yml").read_text(), re.M)
    if not m:
        raise SystemExit("_config.yml has no repository.url")
    return m[1].rstrip("/")


def chapters(root: Path) -> list[Path]:
    return sorted((root / "book").glob("[0-9][0-9]_*.ipynb"))


def _rewrites(root: Path, version: str) -> dict[Path, list[tuple[re.Pattern, str]]]:
    """file -> [(pattern, replacement)]: every place that names the release."""
    url = re.escape(repository_url(root))
    org_name = re.escape(repository_url(root).split("github.com/", 1)[-1])
    setup = (re.compile(rf"(git\+{url})@v[\w.]+"), rf"\g<1>@v{version}")
    cite = (re.compile(r"(in Deep Learning, version )" + VERSION.pattern), rf"\g<1>{version}")
    files = {
        root / "pyproject.toml": [(re.compile(r'^(version = ")[^"]+(")', re.M), rf"\g<1>{version}\g<2>")],
        root / "companion" / "__init__.py": [(re.compile(r'^(__version__ = ")[^"]+(")', re.M), rf"\g<1>{version}\g<2>")],
        root / "_config.yml": [(re.compile(r"^(repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+branch:[ \t]*)\S+", re.M),
                                rf"\g<1>v{version}")],
        root / "README.md": [(re.compile(rf"(colab\.research\.google\.com/github/{org_name}/blob/)[^/\s]+/"),
                              rf"\g<1>v{version}/"), cite],
        root / "book" / "intro.md": [cite],
        root / "CONTRIBUTING.md": [setup],
    }
    for nb in chapters(root):
        files[nb] = [setup]
    return {path: subs for path, subs in files.items() if path.exists()}


def planned_changes(root: Path, version: str) -> dict[Path, tuple[str, str]]:
    """file -> (old text, new text) for every file the release changes."""
    changes = {}
    for path, subs in _rewrites(root, version).items():
        old = path.read_text()
        new = old
        for pattern, replacement in subs:
            new = pattern.sub(replacement, new)
        if new != old:
            changes[path] = (old, new)
    return changes


def disagreements(root: Path = ROOT) -> list[str]:
    """Every place whose release differs from pyproject's version (empty when all agree)."""
    text = (root / "pyproject.toml").read_text()
    m = re.search(r'^version = "([^"]+)"', text, re.M)
    if not m:
        return ["pyproject.toml has no version"]
    version = m[1]
    problems = [f"{path.relative_to(root)} does not name v{version} / {version} everywhere"
                for path in planned_changes(root, version)]
    url = repository_url(root)
    for nb in chapters(root):
        if f"git+{url}@v{version}" not in nb.read_text():
            problems.append(f"{nb.relative_to(root)}: no setup cell installing {url}@v{version}")
    if not re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+branch:[ \t]*v" + re.escape(version) + r"\s*$",
                     (root / "_config.yml").read_text(), re.M):
        problems.append(f"_config.yml: repository.branch is not v{version} (the Colab button's notebook)")
    return problems


def _git(root: Path, *args: str, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], check=check, capture_output=True, text=True)


def release(version: str, root: Path = ROOT, dry_run: bool = False, git: bool = True) -> int:
    if not VERSION.fullmatch(version):
        raise SystemExit(f"version must look like 1.2.3 (or 1.2.3rc1), got {version!r}")
    tag = f"v{version}"
    changes = planned_changes(root, version)
    for path, (old, new) in changes.items():
        rel = str(path.relative_to(root))
        diff = difflib.unified_diff(old.splitlines(), new.splitlines(), rel, rel, lineterm="", n=0)
        print("\n".join(diff))
    if not changes:
        print(f"every file already names {tag}")
    if git:
        if _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).returncode == 0:
            raise SystemExit(f"the tag {tag} exists already")
        dirty = _git(root, "status", "--porcelain", "--", *map(str, changes)).stdout.strip()
        if dirty:
            raise SystemExit(f"uncommitted changes in files the release rewrites; commit them first:\n{dirty}")
    if dry_run:
        print(f"dry run: {len(changes)} file(s) would change" + (f", then a commit and the tag {tag}" if git else ""))
        return 0
    for path, (_, new) in changes.items():
        path.write_text(new)
    problems = disagreements(root)
    if problems:
        print("\n".join(problems))
        raise SystemExit("the release still disagrees with itself (see above); nothing committed")
    if git:
        if changes:
            files = [str(p.relative_to(root)) for p in changes]
            _git(root, "commit", "-q", "-m", f"Release {version}", "--", *files)
        _git(root, "tag", "-a", tag, "-m", f"Release {version}")
        print(f"committed {len(changes)} file(s) and tagged {tag}; publish with: git push origin main {tag}")
    else:
        print(f"rewrote {len(changes)} file(s) for {tag} (no commit, no tag)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version", nargs="?", help="the new version, e.g. 0.2.0")
    parser.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    parser.add_argument("--no-git", action="store_true", help="rewrite the files only: no commit, no tag")
    parser.add_argument("--check", action="store_true", help="exit 1 unless version, setup cells and Colab links agree")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = disagreements(args.root)
        print("\n".join(problems) or "version, setup cells and Colab links agree")
        return 1 if problems else 0
    if not args.version:
        parser.error("give the version to release, or --check")
    return release(args.version, args.root, dry_run=args.dry_run, git=not args.no_git)


if __name__ == "__main__":
    sys.exit(main())
