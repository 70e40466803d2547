"""PyTorch backend (CPU and CUDA, float32/float64): ``tess.get_backend("torch", device="cuda")``."""

from .backend import TorchBackend
from .device import current_memory, peak_memory, reset_peak_memory, torch_device, torch_dtype

Backend = TorchBackend

__all__ = [
    "Backend",
    "TorchBackend",
    "torch_device",
    "torch_dtype",
    "current_memory",
    "peak_memory",
    "reset_peak_memory",
]
