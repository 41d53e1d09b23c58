"""The Colab-like CI job (`make colab`): every chapter, top to bottom, as a Colab user runs it.

1. A venv (``_build/colab/venv``, reused while its inputs are unchanged) with Colab's pinned
   versions (``tools/colab/pip-freeze.txt``) of the packages the course touches: IPython
   7.34, ipywidgets 7.7.1, traitlets 5.7.1, ipykernel, numpy, scipy, matplotlib, scikit-learn,
   transformers, sentence-transformers, ... and Colab's pip. The companion is NOT installed.
   torch: Colab's is its CPU build 2.11.0 from PyTorch's own index, which this machine
   cannot reach; the local CPU wheel of torch 2.13.0 stands in (``COLAB_TORCH`` overrides).
2. A stand-in ``google.colab`` module (``tools/colab/stub``), imported at kernel start-up by
   an IPython startup file, as Colab's kernel does: the setup cells take their Colab branch.
3. The setup cell's own ``%pip install "collapse-scaling-companion @ git+<repository>@v<tag>"``
   really runs: git rewrites the repository URL (``url.<local>.insteadOf``, through
   ``GIT_CONFIG_*`` variables) to a throwaway git repository made from this working tree and
   tagged with the tag the setup cells ask for. Before each chapter the companion is
   uninstalled, as in a fresh Colab runtime.
4. nbval runs each chapter (cells stored in history, as Colab does:
   ``tools/colab/pytest_plugins/nbval_colab.py``): every cell must run, and the checked cells' text and claim
   verdicts must match the recorded ones. Their digits are masked (``--exact-digits``
   compares them too): Colab's numpy, scipy and torch are other versions than the course's,
   and ``make nbval`` checks the digits already.
5. Afterwards: no package of Colab's pinned set changed version or disappeared (the install
   left Colab's runtime alone), the installed companion came from the tag, and the explorer
   widgets build and redraw with ipywidgets 7.7.1 (tests/test_colab.py, in the venv).
6. When chapter 3 ran: chapter 3 again, every cell, with its one switch ``MODEL, LAYER`` set to
   a tiny GPT-2 built offline (``tools/colab/model_switch.py``, in the venv).

    python tools/colab/run_chapters.py                      # all chapters
    python tools/colab/run_chapters.py book/02_*.ipynb      # some
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from check_pins import PINS, normalize, read_pins  # noqa: E402

WORK = ROOT / "_build" / "colab"
# The packages the course touches, installed at Colab's versions (their dependencies follow
# the pins too). pytest is in Colab; nbval is not (it is this job's runner, installed after
# the snapshot of Colab's set is taken and held to the pins as well).
COLAB_PACKAGES = [
    "pip", "ipython", "ipywidgets", "traitlets", "ipykernel", "jupyter_client", "jupyter_core",
    "widgetsnbextension", "jupyterlab_widgets", "tornado", "numpy", "scipy", "matplotlib",
    "scikit-learn", "threadpoolctl", "tqdm", "transformers", "sentence-transformers",
    "huggingface_hub", "tokenizers", "safetensors", "nbformat", "nbclient", "PyYAML",
    "packaging", "pytest",
]
RUNNER_PACKAGES = ["nbval"]
TORCH = os.environ.get("COLAB_TORCH", "torch==2.13.0")
REPOSITORY = "https://github.com/collapse-course/collapse-and-scaling"


# torch 2.13.0 (the stand-in for Colab's 2.11.0) needs setuptools>=77.0.3, Colab has 75.2.0.
UNPINNED = {"setuptools"}


def run(cmd, **kw):
    """Run a set-up command; its output is shown without pip's notes about this machine's
    local package folders ('WARNING: Location ... is ignored')."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    shown = [line for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and not line.startswith("WARNING: Location")]
    if shown:
        print("\n".join(shown[-60:]), flush=True)
    proc.check_returncode()
    return proc


def pinned_constraints(pins: dict) -> str:
    """Colab's ``==`` pins (URL-installed builds such as torch are left to this machine)."""
    return "".join(f"{p['name']}=={p['version']}\n" for n, p in pins.items()
                   if p["url"] is None and n not in UNPINNED)


def freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([python, "-m", "pip", "list", "--format=json"], check=True,
                         capture_output=True, text=True).stdout
    return {normalize(d["name"]): d["version"] for d in json.loads(out)}


def args_python_version(python: str) -> str:
    return subprocess.run([python, "--version"], check=True, capture_output=True, text=True).stdout


def make_venv(python: str, pins: dict) -> Path:
    venv = WORK / "venv"
    vpy = venv / "bin" / "python"
    constraints = pinned_constraints(pins)
    key = hashlib.sha256((constraints + TORCH + repr(COLAB_PACKAGES + RUNNER_PACKAGES + sorted(UNPINNED))
                          + args_python_version(python)).encode()).hexdigest()
    stamp = venv / ".colab-stamp"
    snapshot = venv / "colab-set.json"
    if vpy.exists() and stamp.exists() and stamp.read_text() == key and snapshot.exists():
        now = freeze(vpy)
        if all(now.get(n) == v for n, v in json.loads(snapshot.read_text()).items() if n in pins):
            print(f"Colab-like venv up to date: {venv}")
            return vpy
        print("the Colab-like venv no longer has Colab's versions: making it again")
    shutil.rmtree(venv, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    run([python, "-m", "venv", venv])
    (WORK / "constraints.txt").write_text(constraints)
    c = ["-c", WORK / "constraints.txt"]
    run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", *c, "pip"])
    run([vpy, "-m", "pip", "install", "-q", *c, TORCH, *COLAB_PACKAGES])
    (venv / "colab-set.json").write_text(json.dumps(freeze(vpy), indent=1))
    run([vpy, "-m", "pip", "install", "-q", *c, *RUNNER_PACKAGES])
    stamp.write_text(key)
    return vpy


def setup_tag() -> str:
    """The tag every chapter's setup cell installs (they must agree)."""
    tags = set()
    for nb in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        tags.update(re.findall(re.escape(REPOSITORY) + r"@(v[\w.]+)", nb.read_text()))
    if len(tags) != 1:
        raise SystemExit(f"the chapters' setup cells install {sorted(tags)}: expected one tag")
    return tags.pop()


def local_release(tag: str) -> tuple[Path, str]:
    """A throwaway git repository holding this working tree (tracked and untracked, not
    ignored files), its one commit tagged ``tag``: what the setup cell's URL will clone."""
    repo = WORK / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    git = ["git", "-C", repo, "-c", "user.name=colab-ci", "-c", "user.email=colab-ci@localhost"]
    run([*git, "init", "-q"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", f"working tree as {tag}"])
    run([*git, "tag", tag])
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return repo, commit


def colab_env(repo: Path) -> dict[str, str]:
    ipython_dir = WORK / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-google-colab.py").write_text(
        "# Colab's kernel imports google.colab at start-up; this stand-in does the same.\n"
        f"import sys\nsys.path.insert(0, {str(HERE / 'stub')!r})\nimport google.colab\n")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env.update({
        "IPYTHONDIR": str(ipython_dir),
        "PATH": f"{WORK / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        # git clones the setup cell's URL from the local release instead of GitHub.
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{repo.as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": REPOSITORY,
        "COMPANION_NO_PROGRESS": env.get("COMPANION_NO_PROGRESS", "1"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process (the kernels included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def installed_from(vpy: Path, env: dict) -> dict:
    code = ("import json, importlib.metadata as m; d = m.distribution('collapse-scaling-companion');"
            "print(json.dumps({'version': d.version, 'direct_url': json.loads(d.read_text('direct_url.json') or '{}')}))")
    out = subprocess.run([vpy, "-c", code], env=env, cwd="/", capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path)
    parser.add_argument("--python", default=sys.executable, help="the Python for the venv")
    parser.add_argument("--exact-digits", action="store_true",
                        help="compare the checked cells' digits too (by default only their text and verdicts)")
    args = parser.parse_args(argv)
    chapters = [p.resolve() for p in args.chapters] or sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

    pins = read_pins(PINS)
    vpy = make_venv(args.python, pins)
    colab_set = json.loads((WORK / "venv" / "colab-set.json").read_text())
    before = freeze(vpy)
    tag = setup_tag()
    repo, commit = local_release(tag)
    env = colab_env(repo)
    vver = subprocess.run([vpy, "-c", "import platform; print(platform.python_version())"],
                          check=True, capture_output=True, text=True).stdout.strip()
    print(f"Colab-like venv: Python {vver}, "
          + ", ".join(f"{n} {before.get(n, '-')}" for n in ("ipython", "ipywidgets", "traitlets", "numpy", "torch")))
    print(f"setup cells install {REPOSITORY}@{tag} -> {repo} (commit {commit[:10]})")

    sanitize = []
    if not args.exact_digits:
        # Colab's numpy/scipy/torch differ from the course's: the checked cells' text and the
        # claims' verdicts must match, their printed digits may differ (make nbval checks them).
        (WORK / "sanitize.cfg").write_text("[numbers]\nregex: [-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?\nreplace: <n>\n")
        sanitize = ["--nbval-sanitize-with", str(WORK / "sanitize.cfg")]
    failures, times, cpu = [], {}, {}
    for nb in chapters:
        subprocess.run([vpy, "-m", "pip", "uninstall", "-y", "-q", "collapse-scaling-companion"],
                       env=env, capture_output=True)  # a fresh runtime has no companion
        start, start_cpu = time.time(), _children_cpu()
        proc = subprocess.run([vpy, "-m", "pytest", "-p", "nbval_colab", "--nbval-lax", nb,
                               "-p", "no:cacheprovider", "-q", *sanitize],
                              env={**env, "PYTHONPATH": str(HERE / "pytest_plugins")}, cwd=ROOT)
        times[nb.name], cpu[nb.name] = time.time() - start, _children_cpu() - start_cpu
        info = installed_from(vpy, env)
        vcs = info.get("direct_url", {}).get("vcs_info", {})
        if proc.returncode != 0:
            failures.append(f"{nb.name}: nbval failed")
        elif vcs.get("requested_revision") != tag or vcs.get("commit_id") != commit:
            failures.append(f"{nb.name}: the setup cell did not install the companion from {tag}: {info}")
        print(f"== {nb.name}: {'ok' if proc.returncode == 0 else 'FAILED'} in {times[nb.name]:.0f} s "
              f"(CPU {cpu[nb.name]:.0f} s, the install included); "
              f"companion {info.get('version')} from {info.get('direct_url', {}).get('url')}@{vcs.get('requested_revision')}",
              flush=True)

    after = freeze(vpy)
    changed = [f"{n}: {v} -> {after.get(n, 'removed')}" for n, v in colab_set.items()
               if after.get(n) != v and n in pins]
    added = sorted(f"{n}=={v}" for n, v in after.items() if n not in colab_set)
    print("the installs added to Colab's set:", ", ".join(added) or "nothing")
    if changed:
        failures.append("the install changed Colab's preinstalled packages: " + "; ".join(changed))
        (WORK / "venv" / ".colab-stamp").unlink(missing_ok=True)  # rebuild it next time
    else:
        print(f"none of the {len(colab_set)} packages of the Colab set changed")

    # The explorers' live widgets with Colab's ipywidgets (7.7.1): build, move, redraw.
    proc = subprocess.run([vpy, "-m", "pytest", "tests/test_colab.py", "-q", "-p", "no:cacheprovider",
                           "-k", "widget"], env=env, cwd=ROOT)
    if proc.returncode != 0:
        failures.append("the explorer widgets fail with Colab's ipywidgets")

    # Chapter 3's one model switch, end to end on a tiny GPT-2 built offline (model_switch.py).
    if any(nb.name.startswith("03_") for nb in chapters):
        start, start_cpu = time.time(), _children_cpu()
        proc = subprocess.run([vpy, HERE / "model_switch.py"], env=env, cwd=ROOT)
        key = "03 with MODEL = tiny GPT-2"
        times[key], cpu[key] = time.time() - start, _children_cpu() - start_cpu
        if proc.returncode != 0:
            failures.append("chapter 3 does not run end to end with MODEL switched to a tiny GPT-2")

    print("chapter times, wall (CPU) s: " + ", ".join(f"{k} {v:.0f} ({cpu[k]:.0f})" for k, v in times.items()))
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print(f"colab: {len(chapters)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
