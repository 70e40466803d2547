"""The CPU twin of the CuPy backend: the same kernels and the same fused-kernel
expression tables, executed by NumPy.

It exists for testing: ``tess.get_backend("tess.backends.cupy.twin:Backend")``
runs on any machine and exercises every line of the CuPy backend's logic except
the CUDA launch itself, so the conformance suite can check that logic on CPU.
It is not a fast backend (the fused kernels are interpreted).
"""

from __future__ import annotations

import numpy as np

from .backend import XpBackend
from .kernels import NumpyRunner

__all__ = ["CpuTwinBackend", "Backend"]


class CpuTwinBackend(XpBackend):
    """:class:`~.backend.XpBackend` on NumPy with :class:`~.kernels.NumpyRunner`. Options: ``dtype``."""

    name = "cupy-twin"
    devices = ("cpu",)

    def __init__(self, *, dtype: str = "float32", device: str | None = None) -> None:
        super().__init__(xp=np, runner=NumpyRunner(), dtype=dtype, device=device)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, NumPy version, and what the kernels are."""
        return {**super().info(), "numpy": np.__version__, "kernels": "NumPy twin of the fused CUDA kernels"}


Backend = CpuTwinBackend
