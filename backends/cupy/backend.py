"""The CuPy backend: TESS on NVIDIA GPUs with fused, generated CUDA kernels.

``tess.get_backend("cupy", dtype="float32", device="cuda:0")``.  The engine runs on
:class:`~.kernels.CupyKernels` with ``xp = cupy``: each block step is one GEMM
(cuBLAS, on im2col patches) for the current, ONE fused kernel for
LIF + spike + ψ + traces (:func:`~.codegen.neuron_step_program`, compiled by
NVRTC from :func:`~.codegen.render_cuda`), and on learning steps the LSG
(GEMMs and a softmax on the device), a fused modulation kernel and the
correlation GEMMs.  :class:`XpBackend` is the part shared with the CPU twin.

CuPy is imported when the backend is created, not when this module is
imported, so the CPU-testable parts of the package never need it.  ``import
cupy`` succeeds on machines without a GPU; the constructor therefore checks
``cupy.cuda.is_available()`` and raises
:class:`~tess.errors.BackendUnavailableError` when there is no CUDA device.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from tess.backend import TrainOutput
from tess.engine import EngineBackend
from tess_spec import TessConfig
from tess_spec.errors import BackendUnavailableError, ConfigError

from .codegen import NVRTC_OPTIONS, Program, check_kernel_args, launch_shape, render_cuda
from .kernels import CupyKernels, KernelRunner

__all__ = ["XpBackend", "CupyBackend", "CupyRunner", "import_cupy", "cuda_unavailable_reason", "parse_device"]

log = logging.getLogger(__name__)


def import_cupy() -> Any:
    """Import CuPy or raise :class:`~tess.errors.BackendUnavailableError` naming the extra."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            "backend 'cupy' needs 'cupy', which is not installed; install it with: pip install 'tess[cupy]'"
        ) from exc
    return cupy


def cuda_unavailable_reason(cupy: Any) -> str | None:
    """Why CuPy cannot use a CUDA device here, or ``None`` when one is available."""
    try:
        if cupy.cuda.is_available():
            return None
    except Exception as exc:  # a broken driver install raises instead of answering
        return f"cupy.cuda.is_available() failed: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        detail = f"the CUDA runtime reports {count} device(s)"
    except Exception as exc:
        detail = f"the CUDA runtime says: {exc}"
    return f"no CUDA device is available (cupy.cuda.is_available() is False; {detail})"


def parse_device(device: str) -> int:
    """``"cuda"`` → 0, ``"cuda:N"`` → N; anything else raises :class:`~tess.errors.ConfigError`."""
    head, _, idx = device.partition(":")
    if head != "cuda" or (idx and not idx.isdigit()):
        raise ConfigError(f"device={device!r} is invalid for the 'cupy' backend: expected 'cuda' or 'cuda:N'")
    return int(idx) if idx else 0


class CupyRunner:
    """Compiles (once per program and dtype) and launches the fused kernels with CuPy."""

    def __init__(self, cupy: Any, device_id: int) -> None:
        self._cp = cupy
        self._kernels: dict[tuple[str, str], Any] = {}
        self.sm_count = int(cupy.cuda.Device(device_id).attributes["MultiProcessorCount"])

    def kernel(self, program: Program, dtype: str) -> Any:
        """The compiled ``RawKernel`` of ``program`` in ``dtype`` (cached)."""
        key = (program.name, dtype)
        k = self._kernels.get(key)
        if k is None:
            log.debug("compiling %s (%s) with NVRTC", program.name, dtype)
            k = self._cp.RawKernel(render_cuda(program, dtype), program.name, options=NVRTC_OPTIONS)
            self._kernels[key] = k
        return k

    def __call__(
        self,
        program: Program,
        dtype: str,
        arrays: Mapping[str, Any],
        params: Mapping[str, float],
        lengths: Mapping[str, int],
    ) -> None:
        check_kernel_args(program, dtype, arrays, params, lengths)
        scalar = np.float32 if dtype == "float32" else np.float64
        args = [arrays[a] for a in program.array_names]
        args += [scalar(params[p]) for p in program.params]
        args += [np.int64(lengths[n]) for n in program.lengths]
        shape = launch_shape(sum(int(lengths[n]) for n in program.lengths), self.sm_count)
        if shape is None:
            return
        self.kernel(program, dtype)((shape[0],), (shape[1],), tuple(args))


class XpBackend(EngineBackend):
    """The engine on :class:`~.kernels.CupyKernels` over an array namespace and a fused-kernel
    runner: ``xp = cupy`` (:class:`CupyBackend`) or ``xp = numpy`` (the CPU twin).

    Args:
        xp: the array namespace (``numpy`` or ``cupy``).
        runner: a :class:`~.kernels.KernelRunner`.
        dtype: ``"float32"`` or ``"float64"``.
        device: one of :attr:`devices`.
    """

    name = "xp"
    devices = ("cpu",)

    def __init__(self, *, xp: Any, runner: KernelRunner, dtype: str = "float32", device: str | None = None) -> None:
        self.xp = xp
        self.runner = runner
        super().__init__(dtype=dtype, device=device)

    def make_kernels(self) -> CupyKernels:
        """:class:`~.kernels.CupyKernels` on this backend's ``xp`` and runner."""
        return CupyKernels(self.xp, self.runner, self.dtype)

    def asarray(self, a: np.ndarray) -> Any:
        """An ``xp`` array of this dtype holding ``a``."""
        return self.xp.array(np.asarray(a), dtype=self.dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host copy."""
        return self.kernels.to_numpy(a)


class CupyBackend(XpBackend):
    """TESS on CuPy (NVIDIA GPU). Options: ``dtype`` ("float32" | "float64"), ``device`` ("cuda" | "cuda:N")."""

    name = "cupy"
    devices = ("cuda",)

    def __init__(self, *, dtype: str = "float32", device: str | None = None) -> None:
        device = device or "cuda"
        device_id = parse_device(device)
        cupy = import_cupy()
        reason = cuda_unavailable_reason(cupy)
        if reason is not None:
            raise BackendUnavailableError(
                f"backend 'cupy' needs an NVIDIA CUDA device, but {reason}. Use the 'numpy', 'torch' or "
                "'jax' backend on this machine, or run on a machine with an NVIDIA GPU and driver."
            )
        count = cupy.cuda.runtime.getDeviceCount()
        if device_id >= count:
            raise ConfigError(f"device={device!r} is invalid: this machine has {count} CUDA device(s)")
        self._device = cupy.cuda.Device(device_id)
        with self._device:
            super().__init__(xp=cupy, runner=CupyRunner(cupy, device_id), dtype=dtype, device=device)

    def asarray(self, a: np.ndarray) -> Any:
        """A CuPy array of this dtype on this backend's device."""
        with self._device:
            return self.xp.asarray(np.asarray(a, dtype=self.dtype))

    def info(self) -> dict[str, str]:
        """Name, dtype, device, CuPy version, GPU name and CUDA runtime version."""
        cp = self.xp
        props = cp.cuda.runtime.getDeviceProperties(self._device.id)
        name = props.get("name", b"?")
        return {
            **super().info(),
            "cupy": cp.__version__,
            "gpu": name.decode() if isinstance(name, bytes) else str(name),
            "cuda_runtime": str(cp.cuda.runtime.runtimeGetVersion()),
        }

    def _train_batch(
        self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: Any,
        y: np.ndarray, masks: list[Any], lr: float, record: bool,
    ) -> TrainOutput:
        with self._device:
            return super()._train_batch(config, params, opt_state, x, y, masks, lr, record)

    def _predict(self, config: TessConfig, params: dict[str, Any], x: Any) -> Any:
        with self._device:
            return super()._predict(config, params, x)
