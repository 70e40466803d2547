"""NumPy backend (CPU, float32/float64): ``tess.get_backend("numpy")``.

:mod:`.kernels` implements the engine's kernel protocol on NumPy; :mod:`.backend`
binds it to the :class:`tess.Backend` contract.
"""

from .backend import NumpyBackend
from .kernels import NumpyKernels

Backend = NumpyBackend

__all__ = ["Backend", "NumpyBackend", "NumpyKernels"]
