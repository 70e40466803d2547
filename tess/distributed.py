"""Data-parallel training: how a global batch is split, how workers are launched and
watched, and what ``tess train --nproc N`` runs.

TESS sums each block's update over the learning window and applies it once per
mini-batch, so data parallelism is exact: every worker runs the engine
(:func:`tess.engine.train_batch`) on its shard of the global batch, the engine's
``reduce`` hook sums the gradients and the :class:`~tess.engine.Totals` (loss sum,
correct count) across workers once per batch, and every worker takes the same
optimiser step.  All randomness stays with the one seeded spec generator: every worker
builds the same :class:`tess.Model` from the same seed, draws the same shuffled order,
augmentation and dropout masks for the *global* batch, and keeps its rows
(:func:`shard_batch`); the means divide by the global sample count.  So N workers
compute what one worker computes on the global batch, up to the order of the sums.

Two engines carry it (:data:`SUPPORTED`), each in its backend's ``parallel`` module:

* ``torch``: N processes in a ``torch.distributed`` process group (gloo on the CPU,
  NCCL on CUDA), one per worker, started by :func:`launch` (``tess train --nproc N``)
  or by ``torchrun`` (``torchrun --nnodes … --nproc-per-node … -m tess train …``):
  the workers follow torchrun's environment protocol (:func:`worker_env`);
* ``jax``: one process, the batch sharded over N of ``jax.devices()`` by ``shard_map``.

The split (:func:`shard_bounds`): rank r of N takes the contiguous rows
``[r·floor(n/N) + min(r, n mod N), …)`` — sizes differ by at most one, so a global batch that N
does not divide is split unevenly and the result is still exact (every sum is a sum of
per-sample terms, and the means divide by the global n).  A last batch of an epoch
with fewer samples than workers leaves some workers without a sample: they run one
row of zeros with weight 0, which adds exactly nothing.

A worker that dies is noticed by the launcher within :data:`POLL_SECONDS`; it stops the
others (SIGTERM, then SIGKILL after :data:`STOP_GRACE_SECONDS`) and raises
:class:`tess.errors.WorkerError` naming the rank.  A collective that waits for a lost
peer fails when its connection closes, or at the latest after :func:`timeout_seconds`
(``$TESS_DIST_TIMEOUT``, default :data:`DEFAULT_TIMEOUT`).  Only rank 0 writes (metrics,
JSON, plots, checkpoints; checkpoints are atomic), so the checkpoint of the last
finished epoch stays intact.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from tess_spec import TessConfig
from tess_spec.errors import BackendUnavailableError, ConfigError, WorkerError

__all__ = [
    "SUPPORTED",
    "DEFAULT_TIMEOUT",
    "POLL_SECONDS",
    "STOP_GRACE_SECONDS",
    "LAUNCHED_ENV",
    "SUMMARY_ENV",
    "TIMEOUT_ENV",
    "PARENT_ENV",
    "Shard",
    "WorkerEnv",
    "ParallelRun",
    "shard_bounds",
    "shard_batch",
    "timeout_seconds",
    "worker_env",
    "worker_environment",
    "free_port",
    "launch",
    "die_with_launcher",
    "data_fingerprint",
    "parallel_run",
]

log = logging.getLogger(__name__)

SUPPORTED: dict[str, str] = {
    "torch": "N worker processes in a torch.distributed process group (gloo on the CPU, NCCL on CUDA)",
    "jax": "one process, the batch sharded over N of jax.devices() (shard_map)",
}
"""Backends with data-parallel training → how they run it.  Each has a ``parallel``
module (``tess.backends.<name>.parallel``) with ``make_backend(workers, **options)``."""

DEFAULT_TIMEOUT = 300.0
"""Seconds a collective operation (or the rendezvous) may wait for the other workers
before it fails, unless ``$TESS_DIST_TIMEOUT`` says otherwise."""
POLL_SECONDS = 0.05
"""How often the launcher checks its workers."""
STOP_GRACE_SECONDS = 5.0
"""How long stopped workers get between SIGTERM and SIGKILL."""
LAUNCHED_ENV = "TESS_DIST_LAUNCHED"
"""Set to ``"1"`` in the workers :func:`launch` starts (the launcher holds the checkpoint lock)."""
SUMMARY_ENV = "TESS_DIST_SUMMARY"
"""In rank 0 of a ``tess train --nproc`` run: the file its run summary is written to, for the launcher."""
TIMEOUT_ENV = "TESS_DIST_TIMEOUT"
"""Environment variable overriding :data:`DEFAULT_TIMEOUT` (seconds > 0)."""
PARENT_ENV = "TESS_DIST_PARENT"
"""In the workers :func:`launch` starts: the launcher's pid (see :func:`die_with_launcher`)."""


# -- the split ------------------------------------------------------------------------
def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a global batch of ``n`` that worker ``rank`` of ``world`` takes.

    ``base, extra = divmod(n, world)``; ranks below ``extra`` take ``base + 1`` rows, the
    others ``base``; the shards are contiguous and in rank order, so concatenating them
    gives the global batch back.
    """
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"rank {rank} of {world} workers is invalid: expected 0 <= rank < world >= 1")
    base, extra = divmod(int(n), int(world))
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class Shard(NamedTuple):
    """One worker's part of a global batch (host arrays).

    Attributes:
        x, y, masks: the worker's rows of the batch, labels and dropout masks.
        weights: ``None`` (every row real), or per-row weights (one zero-weight row of
            zeros when the worker has no sample of this batch).
        rows: how many real samples the shard holds.
        n: the global batch's sample count (what the means divide by).
    """

    x: np.ndarray
    y: np.ndarray
    masks: list[np.ndarray | None]
    weights: np.ndarray | None
    rows: int
    n: int


def shard_batch(x: np.ndarray, y: np.ndarray, masks: Sequence[np.ndarray | None], rank: int,
                world: int) -> Shard:
    """Worker ``rank``'s :class:`Shard` of the global batch ``(x, y, masks)`` (:func:`shard_bounds`)."""
    n = int(x.shape[0])
    lo, hi = shard_bounds(n, rank, world)
    if hi > lo:
        return Shard(x[lo:hi], y[lo:hi], [None if m is None else m[lo:hi] for m in masks], None, hi - lo, n)
    zeros = np.zeros((1, *x.shape[1:]), dtype=x.dtype)
    return Shard(zeros, np.zeros(1, dtype=y.dtype),
                 [None if m is None else np.zeros((1, *m.shape[1:]), dtype=m.dtype) for m in masks],
                 np.zeros(1, dtype=x.dtype), 0, n)


def data_fingerprint(data: Any) -> str:
    """A short digest of a dataset's ``x``/``y`` (shapes, dtypes, every label, a strided
    sample of at most 2^20 input values): workers compare it to be sure they train on the
    same data."""
    x, y = np.asarray(data.x), np.asarray(data.y)
    h = hashlib.sha256(repr((x.shape, str(x.dtype), y.shape, str(y.dtype))).encode())
    h.update(np.ascontiguousarray(y).tobytes())
    flat = x.reshape(-1)
    step = max(1, flat.size // (1 << 20))
    h.update(np.ascontiguousarray(flat[::step]).tobytes())
    return h.hexdigest()[:16]


# -- the environment protocol (torchrun's) ------------------------------------------------
def timeout_seconds() -> float:
    """The collective/rendezvous timeout: ``$TESS_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} is invalid: expected a number of seconds > 0")
    return value


@dataclass(frozen=True)
class WorkerEnv:
    """This process's place in a multi-process run, from the environment ``torchrun`` (and
    :func:`launch`) set: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``.

    Attributes:
        rank: this worker's global rank (0 writes the outputs).
        world_size: the number of workers.
        local_rank: the rank on this machine (picks the CUDA device).
        launched: started by :func:`launch` (``tess train --nproc``), not by torchrun.
    """

    rank: int
    world_size: int
    local_rank: int
    launched: bool


def worker_env(environ: Mapping[str, str] | None = None) -> WorkerEnv | None:
    """The :class:`WorkerEnv` of this process, or ``None`` when ``RANK`` and ``WORLD_SIZE`` are
    not both set (not a worker).  Raises :class:`~tess.errors.ConfigError` for values that
    are not integers with ``0 <= RANK < WORLD_SIZE``."""
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise ConfigError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}, LOCAL_RANK="
                          f"{env.get('LOCAL_RANK')!r} are invalid: expected integers (set by torchrun)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} are invalid: expected "
                          "0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0")
    return WorkerEnv(rank, world, local, env.get(LAUNCHED_ENV) == "1")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the rendezvous port of a local launch)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def worker_environment(rank: int, world: int, port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The variables of torchrun's protocol for worker ``rank`` of ``world`` on one machine,
    plus :data:`LAUNCHED_ENV`."""
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
            "GROUP_RANK": "0", "MASTER_ADDR": host, "MASTER_PORT": str(port), LAUNCHED_ENV: "1"}


# -- the launcher ------------------------------------------------------------------------
def die_with_launcher() -> None:
    """In a worker started by :func:`launch`: have Linux send this process SIGTERM when the
    launcher dies (``prctl(PR_SET_PDEATHSIG)``), so no worker outlives it; exit at once if it
    is gone already.  Does nothing in other processes or where ``prctl`` is unavailable."""
    parent = os.environ.get(PARENT_ENV)
    if os.environ.get(LAUNCHED_ENV) != "1" or not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no libc.so.6
        return
    if str(os.getppid()) != parent:  # the launcher died before the request took effect
        raise WorkerError(f"the launcher (pid {parent}) of this worker has exited; stopping")


def _status(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _stop(procs: Sequence[subprocess.Popen], grace: float) -> set[int]:
    """SIGTERM every running process, SIGKILL those still running after ``grace`` seconds; reap
    all.  Returns the indices of those that had to be killed (a stopped or hung process)."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    deadline = time.monotonic() + grace
    forced = set()
    for i, p in enumerate(procs):
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
            forced.add(i)
    return forced


def launch(command: Sequence[str], nproc: int, *, env: Mapping[str, str] | None = None,
           rank_env: Mapping[int, Mapping[str, str]] | None = None, quiet: bool = True,
           grace: float = STOP_GRACE_SECONDS, finish_timeout: float | None = None,
           cwd: str | os.PathLike | None = None) -> None:
    """Run ``nproc`` copies of ``command`` (an argv list) as the workers of one run on this
    machine and wait for them.

    Each gets :func:`worker_environment` (a free rendezvous port on 127.0.0.1) on top of
    ``env`` (default ``os.environ``) and ``rank_env[rank]``; with ``quiet`` the stdout of
    ranks other than 0 is discarded (stderr is kept).  Workers run in their own session
    (a Ctrl-C reaches the launcher, which stops them); a worker that calls
    :func:`die_with_launcher` (``tess train`` does) is sent SIGTERM if the launcher dies.

    The first worker to fail (a non-zero exit status or a signal; a worker killed by a
    signal is named before one that stopped with an error in the same instant) makes the
    launcher stop the others (SIGTERM, SIGKILL after ``grace`` s) and raise
    :class:`~tess.errors.WorkerError` naming its rank and status.  Workers still running
    ``finish_timeout`` s (default :func:`timeout_seconds`) after another finished are
    stopped likewise.  On ``KeyboardInterrupt`` the workers are stopped and it is re-raised.
    """
    if nproc < 1:
        raise ConfigError(f"nproc={nproc} is invalid: expected at least one worker")
    base = dict(os.environ if env is None else env)
    port = free_port()
    finish_timeout = timeout_seconds() if finish_timeout is None else finish_timeout
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(nproc):
            wenv = {**base, **worker_environment(rank, nproc, port), **dict((rank_env or {}).get(rank, {}))}
            procs.append(subprocess.Popen(
                list(command), env={**wenv, PARENT_ENV: str(os.getpid())}, cwd=cwd, start_new_session=True,
                stdout=subprocess.DEVNULL if quiet and rank else None))
        log.info("launched %d workers (pids %s), rendezvous 127.0.0.1:%d", nproc, [p.pid for p in procs], port)
        first_done: float | None = None
        while True:
            codes = [p.poll() for p in procs]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                culprit = min(failed, key=lambda r: (codes[r] >= 0, r))  # signals first, then the lowest rank
                forced = _stop(procs, grace)
                others = ", ".join(
                    f"rank {r}: " + (f"did not stop within {grace:g} s of SIGTERM (hung or stopped?) and was killed"
                                     if r in forced else _status(p.returncode))
                    for r, p in enumerate(procs) if r != culprit)
                raise WorkerError(
                    f"worker rank {culprit} of {nproc} (pid {procs[culprit].pid}) failed: {_status(codes[culprit])}"
                    + (" (its error is printed above)" if codes[culprit] > 0 else "")
                    + f"; the other workers were stopped ({others})")
            if all(c == 0 for c in codes):
                return
            if first_done is None and any(c == 0 for c in codes):
                first_done = time.monotonic()
            if first_done is not None and time.monotonic() - first_done > finish_timeout:
                late = [r for r, c in enumerate(codes) if c is None]
                _stop(procs, grace)
                raise WorkerError(f"worker rank(s) {late} of {nproc} had not finished {finish_timeout:g} s after "
                                  f"another worker finished; they were stopped (set {TIMEOUT_ENV} to wait longer)")
            time.sleep(POLL_SECONDS)
    except BaseException:
        _stop(procs, grace)
        raise


# -- tess train --nproc ------------------------------------------------------------------
@dataclass
class ParallelRun:
    """What ``tess train`` does for a data-parallel run (built by :func:`parallel_run`).

    Attributes:
        backend: the backend name (a key of :data:`SUPPORTED`).
        workers: the number of workers (processes for torch, devices for JAX).
        worker: this process's :class:`WorkerEnv` in a multi-process run; ``None`` in the
            launcher and in a one-process (JAX) run.
    """

    backend: str
    workers: int
    worker: WorkerEnv | None = None

    @property
    def launcher(self) -> bool:
        """Whether this process starts the workers (``tess train --backend torch --nproc N``)."""
        return self.backend == "torch" and self.worker is None

    @property
    def writer(self) -> bool:
        """Whether this process writes the outputs (rank 0, the launcher's checks, a one-process run)."""
        return self.worker is None or self.worker.rank == 0

    @property
    def locks(self) -> bool:
        """Whether this process takes the checkpoint folder's lock (the launcher holds it for
        its workers; under torchrun rank 0 takes it)."""
        return self.worker is None or (self.worker.rank == 0 and not self.worker.launched)

    def make_backend(self, options: dict[str, Any]) -> Any:
        """The backend this process trains with (``options``: ``dtype``, ``device``).

        The launcher gets a plain torch backend (it checks the device; the workers build
        their own); a torch worker joins the process group (:func:`tess.backends.torch.parallel.init_process_group`)
        and gets :class:`~tess.backends.torch.parallel.DataParallelTorchBackend`; JAX gets
        :class:`~tess.backends.jax.parallel.DataParallelJaxBackend` over ``workers`` devices.
        """
        import importlib

        from tess import get_backend

        device = options.get("device")
        if self.launcher:
            backend = get_backend("torch", **options)
            if backend.device.startswith("cuda"):
                import torch

                if torch.cuda.device_count() < self.workers:
                    raise BackendUnavailableError(
                        f"--nproc {self.workers} on CUDA puts one worker on each GPU, but torch sees "
                        f"{torch.cuda.device_count()}; use --nproc {torch.cuda.device_count()} or fewer")
            return backend
        try:
            module = importlib.import_module(f"tess.backends.{self.backend}.parallel")
        except ModuleNotFoundError as exc:
            get_backend(self.backend, **options)  # a missing framework: the registry's message
            raise BackendUnavailableError(f"cannot load tess.backends.{self.backend}.parallel: {exc}") from exc
        if self.worker is not None:
            opts = dict(options)
            if device and device.startswith("cuda"):
                opts["device"] = f"cuda:{self.worker.local_rank}"
            module.init_process_group(opts.get("device"), timeout_seconds())
            return module.make_backend(self.workers, **opts)
        return module.make_backend(self.workers, **options)

    def prepare_worker(self, args: argparse.Namespace) -> None:
        """In a worker: SIGTERM when the launcher dies (:func:`die_with_launcher`); other than
        rank 0, no progress bars and stdout discarded (rank 0 reports)."""
        if self.worker is not None:
            die_with_launcher()
        if self.worker is not None and self.worker.rank != 0:
            args.no_progress = True
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of this worker process

    def launch(self, args: argparse.Namespace) -> dict[str, Any]:
        """Start the workers with this process's command line (``args.argv``, recorded by
        :func:`tess.cli.main`), wait for them (:func:`launch`) and return rank 0's summary."""
        argv = getattr(args, "argv", None)
        if argv is None:
            raise ConfigError("--nproc starts its workers with the command line: run it through tess.cli.main "
                              "(the tess command), not train_command")
        fd, summary_path = tempfile.mkstemp(prefix="tess-dist-", suffix=".json")
        os.close(fd)
        try:
            print(f"tess: launching {self.workers} workers (torch.distributed, "
                  f"{'nccl' if str(getattr(args, 'device', None) or '').startswith('cuda') else 'gloo'}); "
                  "rank 0 reports", flush=True)
            try:
                launch([sys.executable, "-m", "tess", *argv], self.workers, rank_env={0: {SUMMARY_ENV: summary_path}})
            except WorkerError as exc:
                raise WorkerError(f"{exc}. {_checkpoint_note(args)}") from exc
            with open(summary_path, encoding="utf-8") as fh:
                text = fh.read()
            return json.loads(text) if text else {}
        finally:
            with contextlib.suppress(OSError):
                os.unlink(summary_path)

    def finish(self, summary: dict[str, Any]) -> None:
        """After training: rank 0 hands its summary to the launcher; the worker leaves the
        process group."""
        path = os.environ.get(SUMMARY_ENV)
        if self.worker is not None and self.worker.rank == 0 and path:
            from tess_spec.atomic import atomic_write

            atomic_write(path, json.dumps(summary), what="run summary")
        if self.worker is not None:
            import importlib

            importlib.import_module(f"tess.backends.{self.backend}.parallel").destroy_process_group()


def _checkpoint_note(args: argparse.Namespace) -> str:
    """What a failed run left: the checkpoint of the last finished epoch (verified), or none."""
    folder = getattr(args, "checkpoint_dir", None)
    if not folder:
        return "No checkpoint was written (no --checkpoint-dir)."
    from tess.checkpoint import read_checkpoint
    from tess.cli import CHECKPOINT_NAME
    from tess_spec.errors import CheckpointError

    path = os.path.join(folder, CHECKPOINT_NAME)
    if not os.path.exists(path):
        return f"No checkpoint was written yet ({path} does not exist)."
    try:
        epoch = read_checkpoint(path).epoch
    except (CheckpointError, OSError) as exc:
        return f"The checkpoint {path} cannot be read: {exc}"
    return (f"The checkpoint {path} (epoch {epoch}, verified) is intact: continue with the same command plus "
            "--resume (any --nproc).")


def parallel_run(args: argparse.Namespace, cfg: TessConfig) -> ParallelRun | None:
    """The :class:`ParallelRun` of a ``tess train`` command, or ``None`` for a plain run.

    Data-parallel when ``--nproc N`` is given, or when torchrun's ``RANK``/``WORLD_SIZE`` are
    in the environment.  Checks (:class:`~tess.errors.ConfigError`): N ≥ 1; a backend of
    :data:`SUPPORTED`; ``--method tess``; N at most the batch size; no ``--nproc`` under
    torchrun (it already started the workers); no indexed CUDA device (each worker takes
    ``cuda:LOCAL_RANK``); JAX not under torchrun (it runs in one process).
    """
    nproc = getattr(args, "nproc", None)
    env = worker_env()
    if nproc is None and env is None:
        return None
    if nproc is not None and (isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1):
        raise ConfigError(f"--nproc {nproc} is invalid: expected a positive number of workers (1, 2, …)")
    what = f"--nproc {nproc}" if nproc is not None else f"torchrun's WORLD_SIZE={env.world_size}"  # type: ignore[union-attr]
    if args.backend not in SUPPORTED:
        ways = "; ".join(f"{k}: {v}" for k, v in SUPPORTED.items())
        raise ConfigError(f"{what}: the {args.backend!r} backend does not support data-parallel training. "
                          f"Backends that do: {ways}")
    if args.method != "tess":
        raise ConfigError(f"{what}: data-parallel training runs --method tess, not {args.method!r}")
    if args.backend == "jax" and env is not None:
        raise ConfigError("the jax backend shards the batch over the devices of one process (--nproc N); do not "
                          "start it with torchrun (RANK/WORLD_SIZE are set)")
    if env is not None and nproc is not None and not env.launched:
        raise ConfigError(f"torchrun already started {env.world_size} workers (WORLD_SIZE); drop --nproc {nproc}")
    if env is not None and env.launched and nproc != env.world_size:
        raise ConfigError(f"--nproc {nproc} does not match WORLD_SIZE={env.world_size} of this worker")
    workers = env.world_size if env is not None else int(nproc)  # type: ignore[arg-type]
    bs = cfg.train.batch_size
    if workers > bs:
        raise ConfigError(f"{what} is more workers than the batch size {bs}: each worker needs a sample of every "
                          f"batch; use at most {bs} workers or a larger --batch-size")
    device = getattr(args, "device", None)
    if device and ":" in device and workers > 1:
        raise ConfigError(f"--device {device} names one device, but {workers} workers each take their own: pass "
                          f"--device {device.split(':')[0]} (torch: worker r uses cuda:LOCAL_RANK)")
    return ParallelRun(args.backend, workers, env)
