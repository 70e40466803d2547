"""JAX backend (CPU or GPU, float32/float64): ``tess.get_backend("jax")``.

One jit-compiled function trains a mini-batch (``lax.scan`` over time, closed-form
TESS updates, the optimiser step inside the same program); see :mod:`.backend`.
"""

from .backend import JaxBackend

Backend = JaxBackend

__all__ = ["Backend", "JaxBackend"]
