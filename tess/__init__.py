"""tess: TESS, a temporally and spatially local learning rule for spiking neural
networks — one executable specification (:mod:`tess_spec`) and several backends
that provably agree.

    >>> import tess
    >>> backend = tess.get_backend("numpy")
    >>> model = tess.Model(tess.presets.mlp_digits(), backend)

Importing tess imports no framework beyond NumPy; backends load on first use.
"""

from __future__ import annotations

import importlib.util as _ilu
import sys as _sys
from pathlib import Path as _Path


def _alias_source_tree() -> None:
    """Expose ``backends/`` and ``conformance/`` as ``tess.backends`` / ``tess.conformance``
    when tess runs from a source checkout on PYTHONPATH (no install).

    Installed (wheel or editable) the packaging maps those folders to these names
    already; in a plain checkout this does the same mapping, so built-in backends
    are found without installed metadata.
    """
    here = _Path(__file__).resolve().parent
    root = here.parent
    if not (root / "pyproject.toml").is_file():
        return
    for sub in ("backends", "conformance"):
        full = f"{__name__}.{sub}"
        init = root / sub / "__init__.py"
        if full in _sys.modules or (here / sub).exists() or not init.is_file():
            continue
        try:
            if _ilu.find_spec(full) is not None:
                continue
        except (ImportError, ValueError):
            pass
        spec = _ilu.spec_from_file_location(full, init, submodule_search_locations=[str(root / sub)])
        if spec is None or spec.loader is None:  # pragma: no cover
            continue
        module = _ilu.module_from_spec(spec)
        _sys.modules[full] = module
        spec.loader.exec_module(module)
        setattr(_sys.modules[__name__], sub, module)


from tess_spec import SPEC_VERSION, TessConfig  # noqa: E402
from tess_spec import presets  # noqa: E402

from . import errors  # noqa: E402
from .backend import Backend, TrainOutput  # noqa: E402
from .complexity import complexity  # noqa: E402
from .model import EpochMetrics, Model  # noqa: E402
from .registry import get_backend, list_backends  # noqa: E402

_alias_source_tree()

__version__ = "0.1.0"
"""Version of the tess distribution (the rule's own version is :data:`SPEC_VERSION`)."""

__all__ = [
    "Backend",
    "EpochMetrics",
    "Model",
    "SPEC_VERSION",
    "TessConfig",
    "TrainOutput",
    "__version__",
    "complexity",
    "errors",
    "get_backend",
    "list_backends",
    "presets",
]
