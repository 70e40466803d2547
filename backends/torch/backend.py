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
from tess_spec.errors import BackendUnavailableError, ConfigError

from . import bptt
from .device import torch_device, torch_dtype
from .kernels import FusedTorchKernels, TorchKernels

__all__ = ["TorchBackend", "UnfusedTorchBackend", "EagerTorchBackend", "CppTorchBackend", "CompiledTorchBackend",
           "resolve_fuse"]

log = logging.getLogger(__name__)


class TorchBackend(EngineBackend):
    """TESS on PyTorch. Options: ``dtype`` ("float32" | "float64"), ``device`` ("cpu" | "cuda" | "cuda:N"),
    ``method`` ("tess" | "bptt"), ``threads`` (if given, ``torch.set_num_threads(threads)`` —
    process-wide — for CPU runs on shared cores), ``fuse`` and ``channels_last`` (the TESS
    step's implementation, :class:`~.kernels.FusedTorchKernels`):

    * ``fuse="auto"`` (default): ``"cpp"`` on the CPU when a C++ compiler builds the native
      kernels (once per machine, a few seconds), else ``"eager"``; ``"eager"`` on CUDA;
    * ``"cpp"``: the C++ kernels of :mod:`.native` (CPU only);
    * ``"compile"``: :func:`torch.compile` of the step (inductor on the CPU, Triton on CUDA;
      compile time in :attr:`compile_seconds`);
    * ``"eager"``: torch operations in place, no compiler;
    * ``"none"``: the engine's default composition (:class:`~.kernels.TorchKernels`, the
      step before fusion).

    ``channels_last``: convolutions in channels-last memory (``None``: on the CPU, not on CUDA;
    ignored with ``fuse="none"``).  BPTT (``method="bptt"``) always runs the unfused kernels,
    which autograd differentiates.  The classes :class:`UnfusedTorchBackend`,
    :class:`EagerTorchBackend`, :class:`CppTorchBackend` and :class:`CompiledTorchBackend` fix
    ``fuse`` (for ``module:attribute`` names, e.g. the conformance runner's
    ``--backend tess.backends.torch:CppTorchBackend``).

    A CUDA device on a machine without one raises
    :class:`~tess.errors.BackendUnavailableError`, and so does ``fuse="cpp"`` without a C++
    compiler or on CUDA.
    """

    name = "torch"
    devices = ("cpu", "cuda")
    methods = ("tess", "bptt")
    kernels_class = TorchKernels
    default_fuse: str = "auto"
    """The ``fuse`` value used when none is given."""

    def __init__(self, *, dtype: str = "float32", device: str | None = None, method: str = "tess",
                 threads: int | None = None, fuse: str | None = None, channels_last: bool | None = None) -> None:
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ConfigError(f"threads={threads!r} is invalid: expected a positive integer")
            torch.set_num_threads(threads)
        self.torch_device: torch.device = torch_device(device or "cpu")
        self.torch_dtype: torch.dtype = torch_dtype(dtype)
        if channels_last is not None and not isinstance(channels_last, bool):
            raise ConfigError(f"channels_last={channels_last!r} is invalid: expected True, False or None")
        self.channels_last = channels_last
        self.fuse: str = resolve_fuse(self.default_fuse if fuse is None else fuse, self.torch_device)
        super().__init__(dtype=dtype, device=device, method=method)

    def make_kernels(self) -> TorchKernels:
        """Kernels on this backend's device: :class:`~.bptt.BPTTKernels` for ``method="bptt"``,
        :class:`~.kernels.TorchKernels` for ``fuse="none"``, else :class:`~.kernels.FusedTorchKernels`."""
        if self.method == "bptt":
            return bptt.BPTTKernels(self.dtype, self.torch_device)
        if self.fuse == "none":
            return TorchKernels(self.dtype, self.torch_device)
        return FusedTorchKernels(self.dtype, self.torch_device, fuse=self.fuse, channels_last=self.channels_last)

    @property
    def compile_seconds(self) -> float | None:
        """Seconds spent in :func:`torch.compile` so far (``fuse="compile"``), else ``None``."""
        return getattr(self.kernels, "compile_seconds", None)

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
        extra = {"torch": torch.__version__, "threads": str(torch.get_num_threads()),
                 "fuse": self.fuse if self.method == "tess" else "none (bptt)"}
        if isinstance(self.kernels, FusedTorchKernels):
            extra["channels_last"] = str(self.kernels.channels_last)
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


def resolve_fuse(fuse: str, device: torch.device) -> str:
    """The ``fuse`` option of :class:`TorchBackend` made concrete for ``device``.

    ``"auto"`` → ``"cpp"`` on the CPU if the native kernels build here (:func:`.native.available`),
    else ``"eager"``; ``"eager"`` on CUDA.  ``"cpp"`` on CUDA, or without a compiler, raises
    :class:`~tess.errors.BackendUnavailableError`; an unknown value :class:`~tess.errors.ConfigError`."""
    from . import native
    from .fused import FUSE_OPTIONS

    if fuse not in FUSE_OPTIONS:
        raise ConfigError(f"fuse={fuse!r} is invalid: expected one of {', '.join(map(repr, FUSE_OPTIONS))}")
    if fuse == "auto":
        if device.type != "cpu":
            return "eager"
        if native.available():
            return "cpp"
        log.info("fuse='auto': the native kernels are unavailable here, using fuse='eager'")
        return "eager"
    if fuse == "cpp":
        if device.type != "cpu":
            raise BackendUnavailableError(
                f"fuse='cpp' runs the native kernels on CPU tensors, not on {device}; use fuse='compile' "
                "(Triton) or fuse='eager' on CUDA")
        native.load()  # raises BackendUnavailableError with the reason
    return fuse


class UnfusedTorchBackend(TorchBackend):
    """:class:`TorchBackend` with ``fuse="none"`` by default: the engine's unfused composition."""

    default_fuse = "none"


class EagerTorchBackend(TorchBackend):
    """:class:`TorchBackend` with ``fuse="eager"`` by default."""

    default_fuse = "eager"


class CppTorchBackend(TorchBackend):
    """:class:`TorchBackend` with ``fuse="cpp"`` by default (the native C++ kernels)."""

    default_fuse = "cpp"


class CompiledTorchBackend(TorchBackend):
    """:class:`TorchBackend` with ``fuse="compile"`` by default (:func:`torch.compile`)."""

    default_fuse = "compile"
