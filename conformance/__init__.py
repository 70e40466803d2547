"""tess.conformance: the suite every TESS backend must pass.

Run it on a backend (built-in name, an entry-point name from the ``tess.backends``
group, or ``module:attribute`` of a :class:`tess.Backend` subclass)::

    python -m tess.conformance --backend numpy --report report.md
    pytest -p tess.conformance.plugin --pyargs tess.conformance --tess-backend numpy

Groups (one module each): ``strategies`` (meta-tests of the Hypothesis strategies),
``equations`` (differential tests against :mod:`tess_spec.reference`), ``properties``
(rule properties: closed forms, linearity, autodiff equivalence, LSG gradient, state
size, permutation, determinism, profiles), ``golden`` (committed float64 traces),
``errors`` (bad input), ``dataset`` (accuracy and agreement with NumPy) and the
reported-only ``baseline`` (BPTT gap).  Tolerances: :mod:`tess.conformance.tolerances`.
"""

from __future__ import annotations

__all__ = ["main", "run"]


def main(argv=None) -> int:  # noqa: ANN001
    """Command-line entry point (see :mod:`tess.conformance.runner`)."""
    from .runner import main as _main

    return _main(argv)


def run(backend: str, **kwargs):  # noqa: ANN003, ANN201
    """Run the suite programmatically: ``(exit_code, header, rows)`` (see :func:`tess.conformance.runner.run`)."""
    from .runner import run as _run

    return _run(backend, **kwargs)
