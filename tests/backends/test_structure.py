"""The shape of the backends: the same module names for the same roles in every folder,
the algorithm only in the engine (no time loop in a backend or the example), backends
never importing the oracle or each other, and weight standardisation's ε defined once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = sorted(p for p in (ROOT / "backends").iterdir() if (p / "__init__.py").is_file())
SOURCES = [p for d in BACKENDS for p in d.glob("*.py")] + list((ROOT / "examples").rglob("*.py")) + [
    ROOT / "tess" / "bptt.py"]


def test_every_backend_folder_has_the_same_core_modules() -> None:
    assert {p.name for p in BACKENDS} == {"numpy", "torch", "jax", "cupy"}
    for d in BACKENDS:
        names = {p.name for p in d.glob("*.py")}
        assert {"__init__.py", "backend.py", "kernels.py"} <= names, d.name


def test_data_parallel_backends_have_a_parallel_module() -> None:
    """The role "data-parallel training" has one module name, ``parallel.py``, in every folder
    that offers it, with ``make_backend(workers, **options)``; ``tess.distributed.SUPPORTED``
    lists exactly those backends."""
    from tess.distributed import SUPPORTED

    have = {d.name for d in BACKENDS if (d / "parallel.py").is_file()}
    assert have == set(SUPPORTED)
    for name in have:
        text = (ROOT / "backends" / name / "parallel.py").read_text(encoding="utf-8")
        assert re.search(r"^def make_backend\(workers: int \| None = None, \*\*options: Any\)", text, re.M), name


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_time_loop_outside_the_engine(path: Path) -> None:
    """Loops over T (``range(T)``, ``range(config.train.T)``, ``for t in range(...)``) exist in
    :mod:`tess.engine` (its :meth:`~tess.engine.Kernels.scan`) and the oracle only."""
    text = path.read_text(encoding="utf-8")
    hits = re.findall(r"for t in range\(|range\((?:config\.train\.)?T\)|range\(plan\.T\)", text)
    assert not hits, f"{path.name}: a time loop ({hits}); drive tess.engine instead"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_oracle_no_other_backend_no_private_eps(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "tess_spec.reference" not in text and "from tess_spec import reference" not in text, path.name
    own = path.parent.name if path.parent.parent.name == "backends" else None
    for other in ("numpy", "torch", "jax", "cupy") if own is not None or "examples" in path.parts else ():
        if other != own:
            assert f"tess.backends.{other}" not in text, f"{path.name} imports backend {other}"
    assert not re.search(r"\b1e-4\b", text), f"{path.name}: a literal ε; use tess_spec.weight_std.WS_EPS"
