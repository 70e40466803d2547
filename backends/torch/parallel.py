"""Data parallelism on torch: one worker process per rank of a ``torch.distributed`` group.

Every rank holds the whole model and receives the whole global batch from the same
seeded :class:`tess.Model` loop (shuffled order, dropout masks); it keeps its rows
(:func:`tess.distributed.shard_batch`), runs the engine on them with the means
divided by the global sample count, and the engine's ``reduce`` hook
(:meth:`DataParallelTorchBackend.reduce`) sums the gradients and the totals of all
ranks with one ``all_reduce`` of one flat buffer per batch.  Every rank then takes
the same optimiser step.  Prediction splits the rows the same way and gathers the
logits (``all_gather``).  Groups: gloo on the CPU, NCCL on CUDA
(:func:`init_process_group`, torchrun's ``env://`` protocol).
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tess.backend import TrainOutput
from tess.engine import Params, Totals, adam_corrections, params_from_flat, train_batch, tree_map
from tess_spec import TessConfig, to_dict
from tess_spec.errors import ConfigError, WorkerError

from .backend import TorchBackend

__all__ = ["DataParallelTorchBackend", "init_process_group", "destroy_process_group", "make_backend"]

log = logging.getLogger(__name__)


def init_process_group(device: str | None = None, timeout: float = 300.0) -> str:
    """Join the process group described by the environment (torchrun's ``env://``:
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), with NCCL for a CUDA
    ``device`` (made this process's current device) and gloo otherwise; collectives
    fail after ``timeout`` seconds.  Returns the group's backend name (a no-op if joined)."""
    if dist.is_initialized():
        return str(dist.get_backend())
    kind = "nccl" if (device or "cpu").startswith("cuda") else "gloo"
    if kind == "nccl":
        torch.cuda.set_device(torch.device(device))
    try:
        dist.init_process_group(kind, init_method="env://", timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:
        raise WorkerError(f"cannot join the {kind} process group (env://, {timeout:g} s timeout): {exc}") from exc
    return kind


def destroy_process_group() -> None:
    """Leave the process group (if joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class DataParallelTorchBackend(TorchBackend):
    """TESS on torch, data-parallel over the ranks of the default process group.

    Options: those of :class:`~.backend.TorchBackend` (``dtype``, ``device``, ``threads`` …);
    ``method`` must be ``"tess"``.  The process group must be joined first
    (:func:`init_process_group`).  :meth:`train_batch` takes the *global* batch (every rank
    the same) and returns the global loss and correct count; its ``state`` is this rank's rows.

    Attributes:
        rank, workers: this process's rank and the group's size.
        comm_seconds: seconds spent in collectives so far (the all-reduce per batch,
            gathers); ``comm_calls``: how many.
    """

    def __init__(self, *, method: str = "tess", **options: Any) -> None:
        if method != "tess":
            raise ConfigError(f"method={method!r}: data-parallel training runs method='tess' only")
        if not dist.is_initialized():
            raise ConfigError("the data-parallel torch backend needs a process group: call "
                              "tess.backends.torch.parallel.init_process_group() in every worker first (tess train "
                              "--nproc N and torchrun ... -m tess train do)")
        super().__init__(method=method, **options)
        self.rank: int = dist.get_rank()
        self.workers: int = dist.get_world_size()
        self.comm_seconds: float = 0.0
        self.comm_calls: int = 0
        self._last_params: dict[str, Any] | None = None

    def info(self) -> dict[str, str]:
        """As :meth:`TorchBackend.info`, plus the rank, the number of workers and the group backend."""
        return {**super().info(), "rank": str(self.rank), "workers": str(self.workers),
                "process_group": str(dist.get_backend())}

    # -- collectives -----------------------------------------------------------------
    def _collective(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except RuntimeError as exc:  # torch.distributed.DistBackendError (gloo, NCCL) is a RuntimeError
            raise WorkerError(
                f"rank {self.rank} of {self.workers}: the {what} failed — another worker stopped or cannot be "
                f"reached ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        self.comm_seconds += time.perf_counter() - t0
        self.comm_calls += 1
        return out

    def reduce(self, grads: Params, totals: Totals) -> tuple[Params, Totals]:
        """The engine's ``reduce`` hook: every gradient and both totals summed over the ranks,
        in one ``all_reduce`` of one flat buffer (identical on every rank afterwards)."""
        leaves: list[torch.Tensor] = []
        tree_map(leaves.append, (grads, tuple(totals)))
        flat = torch.cat([t.reshape(-1).to(self.torch_dtype) for t in leaves])
        self._collective("all-reduce of the gradients", dist.all_reduce, flat, op=dist.ReduceOp.SUM)
        parts = iter(torch.split(flat, [t.numel() for t in leaves]))
        summed_grads, summed_totals = tree_map(lambda t: next(parts).reshape(t.shape), (grads, tuple(totals)))
        return summed_grads, Totals(*summed_totals)

    # -- the train step ----------------------------------------------------------------
    def train_batch(
        self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: np.ndarray, y: np.ndarray,
        *, masks: list[np.ndarray | None] | None = None, lr: float | None = None, record: bool = False,
    ) -> TrainOutput:
        """T steps of TESS on this rank's shard of the global batch ``(x, y, masks)``, the
        all-reduce, and the optimiser step every rank takes alike (see :meth:`tess.Backend.train_batch`).

        Every rank validates the whole batch (so every rank raises the same error);
        ``record`` is not available (each rank holds a part of the batch)."""
        from tess.distributed import shard_batch

        if record:
            raise ConfigError("record=True is not available in a data-parallel run (each worker holds a part of "
                              "the batch); record with a one-worker backend")
        x, y, masks = self.validated_batch(config, x, y, masks)
        if config.train.batch_size < self.workers:
            raise ConfigError(f"batch_size={config.train.batch_size} is smaller than the {self.workers} workers: "
                              f"use a batch of at least {self.workers} samples or fewer workers")
        shard = shard_batch(x, y, masks, self.rank, self.workers)
        plan = self.plan(config)
        step = int(opt_state["step"]) + 1
        lr = float(config.optimizer.lr if lr is None else lr)
        with torch.no_grad():
            res = train_batch(
                self.kernels, plan, params_from_flat(plan, params), self.moments(plan, opt_state),
                self.asarray(shard.x), self.kernels.labels(shard.y),
                [None if m is None else self.asarray(m) for m in shard.masks], lr=lr,
                corrections=adam_corrections(config.optimizer, step), lsg=self.lsg(config),
                weights=None if shard.weights is None else self.asarray(shard.weights), n=shard.n,
                reduce=self.reduce,
            )
        out = self.train_output(plan, res, step, shard.n, False)
        out.state = [{k: v[: shard.rows] for k, v in s.items()} for s in out.state]
        self._last_params = out.params
        return out

    def run_summary(self) -> dict[str, Any]:
        """What ``tess train`` adds to its summary (``--json``): ``workers`` and ``replicas``
        (``"identical"``, after :meth:`check_replicas`, which raises if not).  Collective:
        every rank calls it."""
        self.check_replicas()
        return {"workers": self.workers, "replicas": "identical"}

    def check_replicas(self) -> None:
        """Check that every rank holds bit-for-bit the parameters of rank 0 after the last
        :meth:`train_batch` (a SHA-256 of each rank's parameters, gathered); raises
        :class:`~tess.errors.WorkerError` on every rank if one differs."""
        import hashlib

        h = hashlib.sha256()
        for k in sorted(self._last_params or {}):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.to_numpy(self._last_params[k])).tobytes())
        digests: list[Any] = [None] * self.workers
        self._collective("gather of the parameter digests", dist.all_gather_object, digests, h.hexdigest())
        bad = [r for r, d in enumerate(digests) if d != digests[0]]
        if bad:
            raise WorkerError(f"rank {self.rank} of {self.workers}: after training, the parameters of rank(s) {bad} "
                              "differ from rank 0's; the ranks took different optimiser steps (please report this)")

    def predict(self, config: TessConfig, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Time-summed logits of the whole ``x`` on every rank: each rank computes its rows
        (:func:`tess.distributed.shard_bounds`), then the rows are gathered."""
        from tess.distributed import shard_bounds

        x = self.validated_input(config, x)
        n = int(x.shape[0])
        lo, hi = shard_bounds(n, self.rank, self.workers)
        width = -(-n // self.workers)
        local = torch.zeros((width, config.network.n_classes), dtype=self.torch_dtype, device=self.torch_device)
        if hi > lo:
            local[: hi - lo] = self._predict(config, params, self.asarray(x[lo:hi]))
        parts = [torch.empty_like(local) for _ in range(self.workers)]
        self._collective("all-gather of the predictions", dist.all_gather, parts, local)
        rows = [shard_bounds(n, r, self.workers) for r in range(self.workers)]
        return torch.cat([p[: b - a] for p, (a, b) in zip(parts, rows)]).cpu().numpy()

    # -- start-up ------------------------------------------------------------------------
    def synchronize(self, model: Any, train: Any) -> None:
        """Give every rank rank 0's model state (its initial or resumed parameters, optimiser
        state, generator, epoch and history — broadcast, so no rank needs the checkpoint
        file), after checking that every rank runs the same config on the same training data
        (:func:`tess.distributed.data_fingerprint`).  Raises :class:`~tess.errors.WorkerError`
        on every rank when one differs."""
        from tess.distributed import data_fingerprint

        mine = {"config": to_dict(model.config), "data": data_fingerprint(train)}
        box = [{"state": model.state_dict(), **mine} if self.rank == 0 else None]
        self._collective("broadcast of rank 0's model", dist.broadcast_object_list, box, src=0)
        ref = box[0]
        problem = ""
        if mine["config"] != ref["config"]:
            diff = sorted(k for k in set(mine["config"]) | set(ref["config"])
                          if mine["config"].get(k) != ref["config"].get(k))
            problem = f"its config differs from rank 0's (in {diff}); every worker must run the same command"
        elif mine["data"] != ref["data"]:
            problem = (f"its training data (fingerprint {mine['data']}) differs from rank 0's ({ref['data']}); every "
                       "worker must read the same dataset")
        flag = torch.tensor([1 if problem else 0], dtype=torch.int64, device=self.torch_device)
        self._collective("start-up check", dist.all_reduce, flag, op=dist.ReduceOp.SUM)
        if problem:
            raise WorkerError(f"rank {self.rank} of {self.workers}: {problem}")
        if int(flag.item()):
            raise WorkerError(f"rank {self.rank} of {self.workers}: stopping, another worker's config or data "
                              "differs from rank 0's (its error names it)")
        if self.rank != 0:
            model.load_state_dict(ref["state"])


def make_backend(workers: int | None = None, **options: Any) -> DataParallelTorchBackend:
    """The data-parallel torch backend of this process's group; ``workers`` (if given) must be
    the group's size.  ``options`` as :class:`DataParallelTorchBackend`."""
    backend = DataParallelTorchBackend(**options)
    if workers is not None and workers != backend.workers:
        raise ConfigError(f"{workers} workers were asked for, but the process group has {backend.workers}")
    return backend
