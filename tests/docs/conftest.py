"""Shared fixtures of the documentation tests: the docs' build hooks as a module,
and one strict build of the site per test session."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def hooks() -> ModuleType:
    """``docs/hooks.py`` (the generators behind every generated part of the site)."""
    return _load("tess_docs_hooks", ROOT / "docs" / "hooks.py")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site: ``$TESS_DOCS_SITE`` when set (``make docs-check`` builds it once),
    else a fresh ``mkdocs build --strict`` into a temporary folder — a failing strict
    build fails every test that needs the site, with mkdocs' output."""
    given = os.environ.get("TESS_DOCS_SITE")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").is_file(), f"TESS_DOCS_SITE={given!r} holds no built site (no index.html)"
        return path
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    cmd = [str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "--site-dir", str(out)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return out
