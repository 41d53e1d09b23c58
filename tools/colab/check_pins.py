"""Does installing the companion into Colab change any of Colab's preinstalled packages?

Colab pins its own IPython (7.34), ipywidgets (7.7.1), traitlets and ~600 other packages; its
kernel breaks when pip upgrades them. This check resolves the package (built from this
checkout) against Colab's pinned sets, ``tools/colab/pip-freeze.txt`` (its default CPU
runtime) and ``tools/colab/pip-freeze.gpu.txt`` (its GPU runtime), the way a Colab
notebook's ``%pip install`` would, and fails when any pinned package would have to change:

1. a static check: every dependency bound in ``pyproject.toml`` admits Colab's version of
   that package (a fast, offline first answer naming the bound at fault);
2. the resolver: ``pip install --dry-run --report`` of the built wheel, for Colab's Python
   and platform (wheels only), with every pin as a constraint. A bound anywhere in the
   dependency tree that excludes a pinned version makes the resolution impossible and the
   check fail; otherwise the report lists the packages the install would add, and the check
   confirms that every pinned package in it keeps Colab's version. pip's ``--python-version``
   only selects wheels: environment markers (``overrides; python_version < "3.12"``) are
   evaluated for the interpreter that runs pip. So pip runs under a Python of Colab's minor
   version when one is found (``$COLAB_PINS_PYTHON``, ``python3.13`` on the PATH, a pyenv
   install); otherwise under this Python, and the check says so.

Packages that Colab installs from a URL or another index than PyPI (its CPU or CUDA builds
of torch, torchvision, torchaudio, torchcodec from PyTorch's own index, google-colab from a
local sdist) are stood in for by empty wheels of the same name and version: they count as
installed, as in Colab (their own dependencies are in the freeze too).

    python tools/colab/check_pins.py            # what `make colab-pins` runs
    python tools/colab/check_pins.py --static   # only step 1 (offline)

Needs network access to the package index for step 2 (metadata only, no large downloads).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINS = Path(__file__).resolve().parent / "pip-freeze.txt"          # Colab's default (CPU) runtime
GPU_PINS = Path(__file__).resolve().parent / "pip-freeze.gpu.txt"  # its GPU runtime
COLAB_PYTHON = "3.13"
COLAB_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                   "linux_x86_64")


def normalize(name: str) -> str:
    """PEP 503 name normalisation (``Jinja2`` and ``jinja2``, ``typing_extensions`` and ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = PINS) -> dict[str, dict]:
    """Colab's packages: normalised name -> {"name", "version", "url"} (url is None for ``==`` pins).

    ``name @ url`` lines take their version from the wheel or sdist file name of the URL;
    a URL without one (a git checkout) is kept with version None.
    """
    pins = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.-]*)==(\S+)", line)
        if m:
            pins[normalize(m[1])] = {"name": m[1], "version": m[2], "url": None}
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.-]*)\s*@\s*(\S+)", line)
        if not m:
            raise ValueError(f"{path}: cannot read the line {raw!r}")
        file = urllib.parse.unquote(m[2].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        version = None
        if file.endswith(".whl"):
            version = file.split("-")[1]
        else:
            s = re.fullmatch(r"[A-Za-z0-9_.]+-([0-9][^-]*?)\.(tar\.gz|zip)", file)
            version = s[1] if s else None
        pins[normalize(m[1])] = {"name": m[1], "version": version, "url": m[2]}
    return pins


def project_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``[project] dependencies`` of pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return list(tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"])


def static_conflicts(dependencies: list[str], pins: dict[str, dict]) -> list[str]:
    """Each direct dependency whose bound excludes Colab's pinned version, as a sentence."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    problems = []
    for text in dependencies:
        req = Requirement(text)
        pin = pins.get(normalize(req.name))
        if pin is None or pin["version"] is None:
            continue
        if not req.specifier.contains(Version(pin["version"]), prereleases=True):
            problems.append(f"pyproject asks for {text!r}, Colab has {pin['name']}=={pin['version']}")
    return problems


def _standin_wheel(folder: Path, name: str, version: str) -> Path:
    """An empty wheel that only says ``name==version`` is installed (no files, no deps)."""
    dist = re.sub(r"[-.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            "Summary: stand-in for Colab's preinstalled build\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: check_pins\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    out = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return out


def constraints(pins: dict[str, dict], standins: Path) -> str:
    """Every pin as a constraint; URL-installed pins become stand-in wheels in ``standins``."""
    lines = []
    for pin in pins.values():
        if pin["version"] is None:
            continue  # e.g. a git checkout of Colab's kernel gateway: nothing can require it
        if pin["url"] is not None or "+" in pin["version"]:  # a build from outside PyPI (2.11.0+cu128)
            _standin_wheel(standins, pin["name"], pin["version"])
        lines.append(f"{pin['name']}=={pin['version']}")
    return "\n".join(lines) + "\n"


def colab_python(version: str = COLAB_PYTHON) -> str | None:
    """An interpreter of Python ``version`` (``"3.13"``) with pip, or None when there is none.

    Tried in order: ``$COLAB_PINS_PYTHON``, ``python3.13`` on the PATH, pyenv's installs
    (``$PYENV_ROOT/versions/3.13*``, default ``~/.pyenv``), this Python.
    """
    candidates = [os.environ.get("COLAB_PINS_PYTHON"), shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted((str(p) for p in pyenv.glob(f"{version}*/bin/python{version}")), reverse=True)
    candidates.append(sys.executable)
    for python in filter(None, candidates):
        try:
            out = subprocess.run([python, "-c", "import sys, pip; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return python
    return None


def build_wheel(folder: Path, python: str = sys.executable) -> Path:
    subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(folder)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return next(folder.glob("*.whl"))


def resolve(pins: dict[str, dict], work: Path, python: str = sys.executable,
            python_version: str = COLAB_PYTHON) -> tuple[int, str, dict | None]:
    """``pip install --dry-run --report`` of this checkout against the pins: (returncode, pip's log, report).

    ``python`` runs pip's resolver (its version decides the environment markers); the wheel
    is built with this Python.
    """
    standins = work / "standins"
    standins.mkdir()
    (work / "constraints.txt").write_text(constraints(pins, standins))
    (work / "wheel").mkdir()
    wheel = build_wheel(work / "wheel")
    cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-input",
           "--report", str(work / "report.json"), "-c", str(work / "constraints.txt"),
           "--find-links", str(standins), "--only-binary", ":all:",
           "--python-version", python_version, "--implementation", "cp",
           "--abi", "cp" + python_version.replace(".", "")]
    for platform in COLAB_PLATFORMS:
        cmd += ["--platform", platform]
    proc = subprocess.run(cmd + [str(wheel)], capture_output=True, text=True)
    log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                    if not line.startswith("WARNING: Location"))  # this machine's local index
    report = json.loads((work / "report.json").read_text()) if proc.returncode == 0 else None
    return proc.returncode, log, report


def newest_wheels(dependencies: list[str], python_version: str, python: str = sys.executable):
    """(returncode, lines): the wheel pip picks for each direct dependency, newest release, no deps."""
    with tempfile.TemporaryDirectory(prefix="wheels-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "-q",
               "--no-input", "--report", str(report), "--only-binary", ":all:",
               "--python-version", python_version, "--implementation", "cp",
               "--abi", "cp" + python_version.replace(".", "")]
        for platform in COLAB_PLATFORMS:
            cmd += ["--platform", platform]
        proc = subprocess.run(cmd + dependencies, capture_output=True, text=True)
        if proc.returncode != 0:
            return proc.returncode, [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
        items = json.loads(report.read_text())["install"]
        return 0, [item["download_info"]["url"].rsplit("/", 1)[-1] for item in items]


def summarize(report: dict, pins: dict[str, dict]) -> tuple[list[str], list[str], list[str]]:
    """(changed pins, kept pins, new packages) of a pip install report."""
    changed, kept, new = [], [], []
    for item in report["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        pin = pins.get(normalize(name))
        if normalize(name) == "collapse-scaling-companion":
            continue
        if pin is None:
            new.append(f"{name}=={version}")
        elif pin["version"] == version:
            kept.append(f"{name}=={version}")
        else:
            changed.append(f"{name}: Colab {pin['version']} -> {version}")
    return changed, kept, new


def check_one(path: Path, python_version: str, static_only: bool = False) -> int:
    """The static check and the resolver against one pip freeze; 1 on failure."""
    pins = read_pins(path)
    shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    print(f"== {shown}: {len(pins)} pinned packages")
    problems = static_conflicts(project_dependencies(), pins)
    for p in problems:
        print("  CONFLICT", p)
    if problems:
        print("FAIL: pyproject's bounds would make pip change Colab's preinstalled packages")
        return 1
    print("pyproject's direct dependencies all admit Colab's versions")
    if static_only:
        return 0
    python = colab_python(python_version)
    if python is None:
        python = sys.executable
        print(f"NOTE: no Python {python_version} found (set COLAB_PINS_PYTHON): pip's environment markers "
              f"are evaluated for this Python {sys.version_info[0]}.{sys.version_info[1]}, wheels for {python_version}")
    with tempfile.TemporaryDirectory(prefix="colab-pins-") as tmp:
        code, log, report = resolve(pins, Path(tmp), python=python, python_version=python_version)
    if report is not None:
        print(f"pip's resolver ran under Python {report['environment']['python_full_version']} ({python})")
    if code != 0:
        print(log[-6000:])
        print(f"FAIL: the package does not install into Colab's pinned set (Python {python_version}) "
              "without changing a pinned package (pip's conflict above)")
        return 1
    changed, kept, new = summarize(report, pins)
    for c in changed:
        print("  CHANGED", c)
    if changed:
        print("FAIL: the install would change Colab's preinstalled packages")
        return 1
    print(f"Resolved for Python {python_version}: {len(kept)} of the package's requirements are "
          f"Colab's pinned versions, unchanged; the install adds {len(new)} package(s): {', '.join(new) or 'none'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pins", type=Path, action="append",
                        help="a pip freeze to check against (repeatable; default: Colab's CPU and GPU runtimes)")
    parser.add_argument("--python-version", default=COLAB_PYTHON, help="Colab's Python (default %(default)s)")
    parser.add_argument("--static", action="store_true", help="only the offline check of pyproject's bounds")
    parser.add_argument("--wheels", default="3.10,3.11,3.12,3.13",
                        help="Pythons for which every direct dependency's newest release must have a "
                             "wheel (comma-separated; empty to skip; default %(default)s)")
    args = parser.parse_args(argv)

    for path in args.pins or [PINS, GPU_PINS]:
        if check_one(path, args.python_version, static_only=args.static):
            return 1
    if args.static:
        return 0
    failed = False
    for version in filter(None, args.wheels.split(",")):
        code, lines = newest_wheels(project_dependencies(), version.strip())
        if code:
            failed = True
            print(f"FAIL: no wheel for Python {version} of a dependency:", *lines, sep="\n  ")
        else:
            print(f"Python {version}: a wheel for every direct dependency ({len(lines)}), e.g. {lines[0]}")
    if failed:
        return 1
    print("colab-pins: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
