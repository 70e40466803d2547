"""Device resolution and peak-memory probes of the PyTorch backend.

:func:`torch_device` turns a user's device string into a :class:`torch.device`,
raising :class:`tess.errors.BackendUnavailableError` when CUDA is asked for but
absent.  :func:`reset_peak_memory` / :func:`peak_memory` measure the peak
memory of a piece of work: CUDA's ``max_memory_allocated`` on a GPU, the
process's peak resident set (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs``) on the CPU.
"""

from __future__ import annotations

import torch

from tess_spec.errors import BackendUnavailableError, ConfigError

__all__ = ["torch_device", "torch_dtype", "reset_peak_memory", "peak_memory", "current_memory", "read_proc_status_kib"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of ``"float32"`` / ``"float64"``."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ConfigError(f"dtype={dtype!r} is invalid: expected 'float32' or 'float64'") from None


def torch_device(device: str | None) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a :class:`torch.device`, checked to exist here.

    Raises :class:`~tess.errors.BackendUnavailableError` for a CUDA device when torch
    has no CUDA (a CPU-only build or no GPU) or the index is out of range, and
    :class:`~tess.errors.ConfigError` for any other device type.
    """
    name = device or "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device={name!r} is invalid: expected 'cpu', 'cuda' or 'cuda:N' ({exc})") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ConfigError(f"device={name!r} is invalid for the torch backend: expected 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        raise BackendUnavailableError(
            f"device={name!r} was requested but torch {torch.__version__} ({build}) cannot use CUDA here; "
            "use device='cpu', or install a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise BackendUnavailableError(
            f"device={name!r} was requested but only {torch.cuda.device_count()} CUDA device(s) exist; "
            f"use an index below {torch.cuda.device_count()}"
        )
    return torch.device("cuda", index)


def read_proc_status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (e.g. ``"VmRSS"``, ``"VmHWM"``), in KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field!r} field")


def current_memory(device: torch.device | str) -> int:
    """Bytes in use now: CUDA ``memory_allocated`` or the process's resident set (CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.memory_allocated(dev))
    return read_proc_status_kib("VmRSS") * 1024


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak measurement: CUDA ``reset_peak_memory_stats``, or on the CPU reset the
    process's ``VmHWM`` to the current RSS (``echo 5 > /proc/self/clear_refs``, Linux ≥ 4.0)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        return
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def peak_memory(device: torch.device | str) -> int:
    """Peak bytes since :func:`reset_peak_memory`: CUDA ``max_memory_allocated``, or the
    process's peak resident set ``VmHWM`` (CPU; compare with the RSS before the work)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev))
    return read_proc_status_kib("VmHWM") * 1024
