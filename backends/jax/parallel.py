"""Data parallelism on JAX: the engine's train step sharded over devices with ``shard_map``.

One process drives ``D`` devices (``jax.devices()`` of the backend's platform: GPUs, or
CPU devices made with ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` set before
JAX is imported).  The padded global batch (see :func:`~.backend.padded_batch`; here
also rounded up to a multiple of ``D``) is split along its first axis over a 1-D
:class:`jax.sharding.Mesh` with the axis :data:`AXIS`; every device runs
:func:`tess.engine.train_batch` on its rows inside one jit-compiled
:func:`jax.shard_map` program, and the engine's ``reduce`` hook is
``jax.lax.psum`` over that axis of the summed gradients and :class:`~tess.engine.Totals`
— once per batch, between the window sums and the optimiser step — so every device
takes the same step on replicated parameters.  The means divide by the global real
sample count and padded rows carry weight 0, so the result equals the one-device
computation on the same global batch up to the order of the sums.

Parameters, optimiser moments and the LSG matrices live replicated on the mesh
(:meth:`DataParallelJaxBackend.asarray`); the final state comes back sharded by rows
(the whole batch's); prediction shards the rows the same way.  Multi-host JAX
(``jax.distributed``) is not supported: one process, its local devices.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tess.backend import TrainOutput
from tess.engine import TrainResult
from tess_spec import TessConfig
from tess_spec.errors import BackendUnavailableError, ConfigError

from .backend import JaxBackend

__all__ = ["AXIS", "DataParallelJaxBackend", "make_backend"]

AXIS = "batch"
"""Name of the mesh axis the batch is split over (the axis ``psum`` sums over)."""


def _shard_map(f: Callable, mesh: Mesh, in_specs: Any, out_specs: Any) -> Callable:
    """``shard_map`` without the varying/invariant type check: the engine's scan starts from
    zero (invariant) carries that become per-device (varying) values, which the check
    rejects; the replicated outputs are replicated by construction (``psum``)."""
    if hasattr(jax, "shard_map"):  # jax >= 0.6
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map  # pragma: no cover - older jax

    return shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)  # pragma: no cover

_REPLICATED = PartitionSpec()
_ROWS = PartitionSpec(AXIS)


class DataParallelJaxBackend(JaxBackend):
    """TESS on JAX, data-parallel over ``devices`` devices of one process.

    Options: as :class:`~.backend.JaxBackend` (``dtype``, ``device``: the platform —
    ``"cpu"`` or ``"cuda"``/``"gpu"``, without an index), and ``devices``: how many of the
    platform's devices to shard over (default: all of them).

    Attributes:
        mesh: the 1-D device mesh (axis :data:`AXIS`).
        workers: the number of devices the batch is split over.
    """

    def __init__(self, *, dtype: str = "float32", device: str | None = None, method: str = "tess",
                 devices: int | None = None) -> None:
        if device is not None and ":" in device:
            raise ConfigError(f"device={device!r} names one device; data-parallel JAX shards over the first N devices "
                              "of a platform: pass 'cpu' or 'gpu'")
        super().__init__(dtype=dtype, device=device, method=method)
        found = list(jax.devices(self.jax_device.platform))
        n = len(found) if devices is None else devices
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"devices={devices!r} is invalid: expected a positive integer (devices to shard over)")
        if n > len(found):
            hint = (" On the CPU, start Python with XLA_FLAGS=--xla_force_host_platform_device_count="
                    f"{n} in the environment (it must be set before JAX is imported)."
                    if self.jax_device.platform == "cpu" else "")
            raise BackendUnavailableError(
                f"data-parallel JAX over {n} devices was requested but JAX sees {len(found)} "
                f"{self.jax_device.platform} device(s) {found}; use at most {len(found)}.{hint}")
        self.workers: int = int(n)
        self.mesh: Mesh = Mesh(np.asarray(found[: self.workers]), (AXIS,))

    def info(self) -> dict[str, str]:
        """As :meth:`JaxBackend.info`, plus the number of devices and the mesh."""
        return {**super().info(), "workers": str(self.workers),
                "mesh": ",".join(str(d) for d in self.mesh.devices.flat)}

    def run_summary(self) -> dict[str, Any]:
        """What ``tess train`` adds to its summary (``--json``): ``workers``, the number of devices."""
        return {"workers": self.workers}

    # -- placement -----------------------------------------------------------------
    def asarray(self, a: np.ndarray) -> Any:
        """A JAX array of this backend's dtype holding ``a``, replicated on every device of the mesh."""
        with self._x64():
            return jax.device_put(np.asarray(a, dtype=self.dtype), NamedSharding(self.mesh, _REPLICATED))

    def _where(self) -> str:
        return "mesh:" + ",".join(str(d) for d in self.mesh.devices.flat)

    def _specs(self, kind: str) -> tuple[Any, Any]:
        """``(in_specs, out_specs)`` of a ``kind`` program (the argument order of
        :meth:`JaxBackend._train_batch` / :meth:`JaxBackend._predict`)."""
        R, B = _REPLICATED, _ROWS
        if kind == "train":  # params, moments, corrections, x, y, w, n, masks, lr, mats
            return (R, R, R, B, B, B, R, B, R, R), TrainResult(R, R, R, B, R, R, R)
        return (R, B), B  # params, x -> logits

    def _place(self, kind: str, args: tuple) -> tuple:
        in_specs, _ = self._specs(kind)
        return tuple(jax.device_put(a, NamedSharding(self.mesh, s)) for a, s in zip(args, in_specs))

    def _rows(self, rows: int) -> int:
        return -(-rows // self.workers) * self.workers

    def _program(self, kind: str, fn: Callable) -> Callable:
        in_specs, out_specs = self._specs(kind)
        if kind == "train":
            def body(*args: Any) -> TrainResult:
                res = fn(*args)  # the engine's train_batch on this device's rows; reduce = psum
                return res._replace(sums=jax.lax.psum(res.sums, AXIS))  # the global window sums
        else:
            body = fn
        return _shard_map(body, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs)

    # -- the reduce hook and the train step ---------------------------------------
    def reduce(self, grads: Any, totals: Any) -> tuple[Any, Any]:
        """The engine's ``reduce`` hook: ``psum`` of the gradients and the totals over the mesh axis."""
        return jax.lax.psum((grads, totals), AXIS)

    def _train_batch(self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: Any,
                     y: np.ndarray, masks: list[Any], lr: float, record: bool) -> TrainOutput:
        if record:
            raise ConfigError("record=True is not available in a data-parallel run (each device holds a part of "
                              "the batch); record with a one-device backend")
        if config.train.batch_size < self.workers:
            raise ConfigError(f"batch_size={config.train.batch_size} is smaller than the {self.workers} devices the "
                              f"batch is split over: use a batch of at least {self.workers} samples or fewer devices")
        return super()._train_batch(config, params, opt_state, x, y, masks, lr, record)


def make_backend(workers: int | None = None, **options: Any) -> DataParallelJaxBackend:
    """The data-parallel JAX backend over ``workers`` devices (default all) of the platform;
    ``options`` as :class:`DataParallelJaxBackend` (``dtype``, ``device``)."""
    return DataParallelJaxBackend(devices=workers, **options)
