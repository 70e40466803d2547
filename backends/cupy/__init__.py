"""CuPy backend (NVIDIA GPU, float32/float64): ``tess.get_backend("cupy")``.

Importing this package does not import CuPy; creating the backend does, and
raises :class:`tess.errors.BackendUnavailableError` when CuPy or a CUDA device
is missing.  :mod:`.kernels` implements the engine's kernel protocol over an
array namespace (its neuron step and modulation are the fused kernels that
:mod:`.codegen` generates), :mod:`.backend` binds it to the :class:`tess.Backend`
contract, and :mod:`.twin` runs all of it with NumPy on CPU, for tests.
"""

from .backend import CupyBackend

Backend = CupyBackend

__all__ = ["Backend", "CupyBackend"]
