"""The NumPy backend: the engine on :class:`~.kernels.NumpyKernels` (CPU, float32 by default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tess.engine import EngineBackend

from .kernels import NumpyKernels

__all__ = ["NumpyBackend"]


class NumpyBackend(EngineBackend):
    """TESS on NumPy (CPU). Options: ``dtype`` ("float32" | "float64")."""

    name = "numpy"
    devices = ("cpu",)
    kernels_class = NumpyKernels

    def asarray(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` in this backend's dtype."""
        return np.array(a, dtype=self.dtype, copy=True)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A copy."""
        return np.array(a, copy=True)

    def info(self) -> dict[str, str]:
        """Name, dtype, device and the NumPy version."""
        return {**super().info(), "numpy": np.__version__}
