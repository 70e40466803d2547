"""The wheel and the editable install expose the same, honest import names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WALK = r"""
import json, os, sys
import tess, tess_spec, tess.backends, tess.conformance
names = set()
for pkg in (tess, tess_spec, tess.backends, tess.conformance):
    for base in pkg.__path__:
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = os.path.relpath(dirpath, base)
            prefix = pkg.__name__ + ("" if rel == "." else "." + rel.replace(os.sep, "."))
            if "__init__.py" not in filenames:
                continue
            for f in filenames:
                if f.endswith(".py"):
                    names.add(prefix if f == "__init__.py" else prefix + "." + f[:-3])
print(json.dumps(sorted(names)))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy without build/: setuptools reuses build/lib, where modules removed
    # from the tree since an earlier build would still be packed (and the source tree stays clean).
    src = tmp_path_factory.mktemp("src") / "tess"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "site", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
        check=True, capture_output=True,
    )
    (whl,) = out.glob("tess-*.whl")
    return whl


def _wheel_modules(whl: Path) -> set[str]:
    names = set()
    for n in zipfile.ZipFile(whl).namelist():
        if n.endswith(".py") and ".dist-info/" not in n:
            mod = n[:-3].replace("/", ".")
            names.add(mod[: -len(".__init__")] if mod.endswith(".__init__") else mod)
    return names


def test_wheel_file_list(wheel: Path) -> None:
    files = zipfile.ZipFile(wheel).namelist()
    tops = {f.split("/")[0] for f in files if ".dist-info" not in f}
    assert tops == {"tess", "tess_spec"}, tops  # no top-level `backends` or `conformance`
    for required in ("tess/backends/numpy/backend.py", "tess/conformance/__init__.py",
                     "tess_spec/reference.py", "tess/data/digits.npz", "tess/cli.py"):
        assert required in files, required
    ep = next(f for f in files if f.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(ep).decode()
    assert "[tess.backends]" in text and "numpy = tess.backends.numpy:Backend" in text
    assert "tess = tess.cli:main" in text


def test_editable_and_wheel_expose_the_same_modules(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    from_wheel = json.loads(subprocess.run(
        [sys.executable, "-c", WALK], check=True, capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    ).stdout)
    editable = json.loads(subprocess.run(
        [sys.executable, "-c", WALK], check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout)
    assert set(from_wheel) == _wheel_modules(wheel)
    assert set(editable) - set(from_wheel) == set(), "only in the editable install"
    assert set(from_wheel) - set(editable) == set(), "only in the wheel"


def test_source_tree_on_pythonpath_finds_builtin_backends(tmp_path: Path) -> None:
    """As on a machine with no install: PYTHONPATH=<checkout>, no entry-point metadata."""
    code = ("import sys, tess; b = tess.get_backend('numpy'); import tess.conformance;"
            "print(b.name, tess.backends.numpy.__file__)")
    out = subprocess.run([sys.executable, "-S", "-c", "import site; site.main = None\n" + code],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": f"{ROOT}:{_numpy_site()}", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("numpy ") and str(ROOT / "backends" / "numpy") in out.stdout


def _numpy_site() -> str:
    import numpy

    return str(Path(numpy.__file__).resolve().parents[1])
