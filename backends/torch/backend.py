"""The PyTorch backend: the engine on :class:`~.kernels.TorchKernels` (CPU or CUDA).

The TESS path uses the spec's closed-form updates, never autograd: the engine runs
under :func:`torch.no_grad`, no graph is built, and nothing proportional to T is
kept.  ``method="bptt"`` selects the baseline instead (:mod:`.bptt`): the same
network and kernels, trained end to end by autograd through time.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from tess.backend import TrainOutput
from tess.engine import EngineBackend
from tess_spec import TessConfig
from tess_spec.errors import ConfigError

from . import bptt
from .device import torch_device, torch_dtype
from .kernels import TorchKernels

__all__ = ["TorchBackend"]

log = logging.getLogger(__name__)


class TorchBackend(EngineBackend):
    """TESS on PyTorch. Options: ``dtype`` ("float32" | "float64"), ``device`` ("cpu" | "cuda" | "cuda:N"),
    ``method`` ("tess" | "bptt"), ``threads`` (if given, ``torch.set_num_threads(threads)`` —
    process-wide — for CPU runs on shared cores).

    A CUDA device on a machine without one raises
    :class:`~tess.errors.BackendUnavailableError`.
    """

    name = "torch"
    devices = ("cpu", "cuda")
    methods = ("tess", "bptt")
    kernels_class = TorchKernels

    def __init__(self, *, dtype: str = "float32", device: str | None = None, method: str = "tess",
                 threads: int | None = None) -> None:
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ConfigError(f"threads={threads!r} is invalid: expected a positive integer")
            torch.set_num_threads(threads)
        self.torch_device: torch.device = torch_device(device or "cpu")
        self.torch_dtype: torch.dtype = torch_dtype(dtype)
        super().__init__(dtype=dtype, device=device, method=method)

    def make_kernels(self) -> TorchKernels:
        """Kernels on this backend's device (:class:`~.bptt.BPTTKernels` for ``method="bptt"``)."""
        cls = bptt.BPTTKernels if self.method == "bptt" else TorchKernels
        return cls(self.dtype, self.torch_device)

    # -- conversions -----------------------------------------------------------
    def asarray(self, a: np.ndarray) -> torch.Tensor:
        """A tensor of this backend's dtype on its device holding ``a``.

        On the CPU a contiguous, writeable array of the right dtype is shared, not
        copied (an input sequence is O(T) data; copying it would make the step's
        memory grow with T); the backend never writes into its inputs or parameters.
        """
        a = np.asarray(a)
        if (
            self.torch_device.type == "cpu"
            and a.dtype == np.dtype(self.dtype)
            and a.flags.c_contiguous
            and a.flags.writeable
        ):
            return torch.from_numpy(a)
        return torch.as_tensor(np.ascontiguousarray(a, dtype=self.dtype), device=self.torch_device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy of a tensor (moved to the host)."""
        return self.kernels.to_numpy(a)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, torch version and (CPU) intra-op thread count."""
        extra = {"torch": torch.__version__, "threads": str(torch.get_num_threads())}
        if self.torch_device.type == "cuda":
            extra["gpu"] = torch.cuda.get_device_name(self.torch_device)
        return {**super().info(), **extra}

    # -- the train step and prediction --------------------------------------------
    def _train_batch(
        self, config: TessConfig, params: dict[str, torch.Tensor], opt_state: dict[str, Any], x: torch.Tensor,
        y: np.ndarray, masks: list[torch.Tensor | None], lr: float, record: bool,
    ) -> TrainOutput:
        if self.method == "bptt":
            return bptt.train_batch(self, config, params, opt_state, x, y, masks, lr, record)
        with torch.no_grad():
            return super()._train_batch(config, params, opt_state, x, y, masks, lr, record)

    def _predict(self, config: TessConfig, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return super()._predict(config, params, x)
