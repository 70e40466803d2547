"""CuPy backend (NVIDIA GPU, float32/float64): ``tess.get_backend("cupy")``.

Importing this package does not import CuPy; creating the backend does, and
raises :class:`tess.errors.BackendUnavailableError` when CuPy or a CUDA device
is missing.  :mod:`.kernels` (fused-kernel source generation and its NumPy
twin), :mod:`.ops` and :mod:`.core` (the array-namespace-generic train loop)
run on CPU; :mod:`.twin` binds them to NumPy for tests.
"""

from .backend import CupyBackend

Backend = CupyBackend

__all__ = ["Backend", "CupyBackend"]
