"""Shared helpers of the benchmarks: result files, environment description, networks and data."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Default output folder (``benchmarks/results``)."""

VGG_WIDTH = 0.25
"""Width scale of the "reduced VGG": VGG-9 (DVS Gesture settings, 2×32×32 event frames,
batch 16) with every block's channels × 0.25 (16-32-64-64-128-128-128-128)."""


def environment(threads: int | None = None) -> dict[str, Any]:
    """Machine and library versions (recorded with every result)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = threads or torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ModuleNotFoundError:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
    except OSError:  # pragma: no cover
        pass
    return env


def pin_one_cpu(threads: int | None) -> list[int] | None:
    """With ``threads == 1``, pin this process to one CPU (the last it may run on) and return
    ``[cpu]``; else leave it and return ``None``.  The thread settings alone do not make a run
    single-threaded: XLA's CPU thread pool ignores them and ran a JAX VGG batch on two cores
    (1014 ms of CPU per batch unpinned against 631 ms pinned), so a "1 thread" comparison
    against torch held to one thread was not one.  Timings of one process only (workers of
    other benchmarks inherit an affinity, so this is not applied globally)."""
    if threads != 1 or not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return [cpu]


def write_json(out_dir: Path, name: str, payload: dict[str, Any]) -> Path:
    """Atomically write ``out_dir/name.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".bench-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, path)
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "—" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def provenance(env: dict[str, Any], argv: Sequence[str] | None = None) -> str:
    """One Markdown line: the command that produced a table and the machine it ran on."""
    command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    versions = ", ".join(f"{k} {env[k]}" for k in ("python", "numpy", "torch") if env.get(k))
    gpu = f"GPU {env['cuda']}" if env.get("cuda") else "no GPU"
    machine = env.get("cpu") or env.get("machine")
    return (f"\n_Command: `{command}` — machine: {machine}, {env.get('cpu_count')} cores, {gpu}; "
            f"{versions}; {env.get('time')}._\n")


def write_markdown(out_dir: Path, name: str, text: str, env: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/name.md`` (included by the docs), ending with :func:`provenance` when
    ``env`` (from :func:`environment`) is given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.md"
    path.write_text(text + (provenance(env) if env is not None else ""))
    return path


def mib(n: float | None) -> float | None:
    """Bytes → MiB."""
    return None if n is None else n / 2**20


def network_config(net: str, T: int, width: float = VGG_WIDTH):
    """``"vgg"`` (reduced VGG-9, DVS-Gesture settings, n_learn = T) or ``"mlp"`` (digits MLP) at ``T`` steps."""
    from tess_spec import mlp_digits, vgg9

    if net == "vgg":
        return vgg9("dvs_gesture", width_scale=width).replace(**{"train.T": T, "train.n_learn": T})
    if net == "mlp":
        return mlp_digits(T=T)
    raise ValueError(f"unknown benchmark network {net!r}: expected 'vgg' or 'mlp'")


def batch_data(config, seed: int = 0, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One float32 batch for ``config``: event frames ``(B, T, C, H, W)`` with 10% events for
    a conv network, a direct input ``(B, N)`` in [0, 1) for an MLP; labels uniform."""
    rng = np.random.default_rng(seed)
    n = batch or config.train.batch_size
    shape = config.network.input_shape
    if len(shape) == 3:
        x = (rng.random((n, config.train.T, *shape)) < 0.1).astype(np.float32)
    else:
        x = rng.random((n, *shape)).astype(np.float32)
    return x, rng.integers(0, config.network.n_classes, n).astype(np.int64)
