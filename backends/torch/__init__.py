"""PyTorch backend (CPU and CUDA, float32/float64): ``tess.get_backend("torch", device="cuda")``.

:mod:`.kernels` implements the engine's kernel protocol on torch tensors (and its fused
step, :mod:`.fused` with the C++ kernels of :mod:`.native`),
:mod:`.backend` binds it to the :class:`tess.Backend` contract, :mod:`.bptt` is the
BPTT baseline (``method="bptt"``) on the same kernels, :mod:`.device` resolves
devices and measures peak memory.
"""

from .backend import CompiledTorchBackend, CppTorchBackend, EagerTorchBackend, TorchBackend, UnfusedTorchBackend
from .bptt import BPTTKernels, SpikeFunction
from .device import current_memory, peak_memory, reset_peak_memory, torch_device, torch_dtype
from .kernels import FusedTorchKernels, TorchKernels

Backend = TorchBackend

__all__ = [
    "Backend",
    "TorchBackend",
    "TorchKernels",
    "FusedTorchKernels",
    "UnfusedTorchBackend",
    "EagerTorchBackend",
    "CppTorchBackend",
    "CompiledTorchBackend",
    "BPTTKernels",
    "SpikeFunction",
    "torch_device",
    "torch_dtype",
    "current_memory",
    "peak_memory",
    "reset_peak_memory",
]
