"""get_backend / list_backends: names, clear errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tess
from tess import registry
from tess.errors import BackendNotFoundError, BackendUnavailableError


def test_list_and_get() -> None:
    names = tess.list_backends()
    assert {"numpy", "torch", "jax", "cupy"} <= set(names)
    b = tess.get_backend("numpy", dtype="float64")
    assert b.name == "numpy" and b.dtype == "float64" and isinstance(b, tess.Backend)


def test_unknown_backend_lists_the_available_ones() -> None:
    with pytest.raises(BackendNotFoundError, match=r"unknown backend 'tensorflow'.*numpy.*torch"):
        tess.get_backend("tensorflow")


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        registry.BUILTINS, "fancy",
        registry._Builtin("tess_fancy_framework_xyz.backend:Backend", "fancy", ("tess_fancy_framework_xyz",)),
    )
    with pytest.raises(BackendUnavailableError, match=r"pip install 'tess\[fancy\]'"):
        tess.get_backend("fancy")


def test_module_attribute_path() -> None:
    b = tess.get_backend("tess.backends.numpy:NumpyBackend")
    assert b.name == "numpy"
    with pytest.raises(BackendNotFoundError, match="not a tess.backend.Backend subclass"):
        tess.get_backend("tess.errors:ConfigError")


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(tess.errors.ConfigError, match="dtype='float16'"):
        tess.get_backend("numpy", dtype="float16")
    with pytest.raises(tess.errors.ConfigError, match="device='cuda'"):
        tess.get_backend("numpy", device="cuda")


def test_import_tess_imports_no_framework() -> None:
    code = (
        "import sys, tess, tess_spec, tess.cli, tess.datasets\n"
        "tess.get_backend('numpy')\n"
        "bad = [m for m in ('torch', 'jax', 'cupy', 'tensorflow', 'sklearn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
