"""NumPy backend (CPU, float32/float64): ``tess.get_backend("numpy")``."""

from .backend import NumpyBackend

Backend = NumpyBackend

__all__ = ["Backend", "NumpyBackend"]
