"""JAX backend (CPU or GPU, float32/float64): ``tess.get_backend("jax")``.

:mod:`.kernels` implements the engine's kernel protocol on ``jax.numpy`` (channels-last,
``lax.scan`` over time); :mod:`.backend` jit-compiles the engine's train step into one
program per mini-batch and binds it to the :class:`tess.Backend` contract.
"""

from .backend import JaxBackend
from .kernels import JaxKernels

Backend = JaxBackend

__all__ = ["Backend", "JaxBackend", "JaxKernels"]
