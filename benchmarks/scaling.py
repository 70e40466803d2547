"""Scaling: training samples per second of TESS on 1 and 2 data-parallel torch workers
(``torch.distributed``, gloo, one CPU thread each) on the reduced VGG (VGG-9 width × 0.25,
2×32×32 event frames, T = 20, global batch 16: 8 samples per worker), in one run.

Two worker processes are started once (:func:`tess.distributed.launch`, the launcher of
``tess train --nproc``).  Every round times, in an order that alternates between rounds
(so a change in the machine's load hits all modes alike), ``BATCHES`` global batches of

* ``1 worker × 1 thread``: rank 0 alone, a plain torch backend (rank 1 waits in a barrier);
* ``1 worker × 2 threads``: the same with torch's intra-op pool at two threads (the
  other way to use two cores);
* ``2 workers × 1 thread``: both ranks, :class:`tess.backends.torch.parallel.DataParallelTorchBackend`,
  each on its 8 samples, one all-reduce per batch (its time is measured apart).

Parallel efficiency = samples/s(2 workers) / (2 × samples/s(1 worker × 1 thread)), the
median over rounds of the per-round ratio (with its range).  The machine's load average
and each worker's CPU time / wall time during each mode (1.0: it had a core to itself)
are recorded: on a shared machine the figure says as much about the neighbours as
about tess.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS_DIR, VGG_WIDTH, batch_data, environment, markdown_table, network_config, write_json, write_markdown

ROOT = Path(__file__).resolve().parents[1]
MODES = ("1 worker × 1 thread", "1 worker × 2 threads", "2 workers × 1 thread")
"""The timed modes, in the order of even rounds (odd rounds run them in reverse)."""
ROUNDS = 5
"""Rounds of the full run."""
BATCHES = 2
"""Global batches timed per mode and round."""


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _running() -> str:
    """``running/total`` scheduling entities (the 4th field of ``/proc/loadavg``)."""
    try:
        return Path("/proc/loadavg").read_text().split()[3]
    except OSError:  # pragma: no cover - not Linux
        return "?"


def worker(spec: dict[str, Any], out_path: str) -> None:
    """One rank of the benchmark (run as ``python -m benchmarks.scaling --worker SPEC OUT``
    by :func:`run`, with torchrun's environment); rank 0 writes the timings to ``out_path``."""
    import torch
    import torch.distributed as dist

    import tess
    from tess.backends.torch.parallel import DataParallelTorchBackend, init_process_group
    from tess.distributed import die_with_launcher
    from tess_spec import draw_dropout_masks, init_opt_state, init_params, make_rng

    die_with_launcher()
    torch.set_num_threads(1)
    init_process_group("cpu", 600.0)
    rank = dist.get_rank()
    config = network_config("vgg", spec["T"], spec["width"])
    x, y = batch_data(config)
    masks = draw_dropout_masks(config, x.shape[0], make_rng(1), "float32")
    np_params = {k: v.astype(np.float32) for k, v in init_params(config, make_rng(0)).items()}

    def trainer(backend: Any) -> Any:
        state = {"p": backend.params_from_numpy(np_params),
                 "o": backend.opt_state_from_numpy(init_opt_state(config, np_params))}

        def step() -> None:
            out = backend.train_batch(config, state["p"], state["o"], x, y, masks=masks)  # host loss: work done
            state["p"], state["o"] = out.params, out.opt_state

        return step

    single = trainer(tess.get_backend("torch", dtype="float32")) if rank == 0 else None
    dp_backend = DataParallelTorchBackend(dtype="float32")
    parallel = trainer(dp_backend)

    def phase(mode: str, n: int) -> dict[str, Any]:
        """Time ``n`` batches of ``mode`` (every rank calls it; rank 1 idles in single modes)."""
        dist.barrier()
        comm0 = dp_backend.comm_seconds
        times: list[float] = []
        c0, w0 = time.process_time(), time.perf_counter()
        if mode.startswith("2 workers"):
            for _ in range(n):
                t0 = time.perf_counter()
                parallel()
                times.append(time.perf_counter() - t0)
        elif rank == 0:
            torch.set_num_threads(2 if "2 threads" in mode else 1)
            for _ in range(n):
                t0 = time.perf_counter()
                single()  # type: ignore[misc]
                times.append(time.perf_counter() - t0)
            torch.set_num_threads(1)
        dist.barrier()  # an idle rank sleeps here (gloo's barrier does not spin)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        return {"batch_s": times, "cpu_per_wall": cpu / wall, "cpu_s": cpu, "wall_s": wall,
                "comm_s": dp_backend.comm_seconds - comm0}

    for mode in MODES:  # warm-up: lazy initialisation, first-call allocations
        phase(mode, 1)
    rounds = []
    for r in range(spec["rounds"]):
        order = MODES if r % 2 == 0 else tuple(reversed(MODES))
        rounds.append({mode: phase(mode, spec["batches"]) for mode in order})
    # the all-reduce alone: the gradients' size, back to back after a barrier (no waiting for a slower rank)
    buf = torch.zeros(sum(v.size for v in np_params.values()) + 2, dtype=torch.float32)
    dist.barrier()
    pure = []
    for _ in range(spec["allreduces"]):
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        pure.append(time.perf_counter() - t0)
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, {"rounds": rounds, "allreduce_s": pure, "backend": dp_backend.info()})
    if rank == 0:
        Path(out_path).write_text(json.dumps({"ranks": everyone, "batch": int(x.shape[0]),
                                              "allreduce_floats": int(sum(v.size for v in np_params.values()) + 2)}))
    dist.destroy_process_group()


def summarise(data: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Per mode: samples/s (median over all timed batches of rank 0) and CPU/wall per rank;
    per round: the 2-worker / 1-worker throughput ratio; the all-reduce time per batch."""
    batch = data["batch"]
    ranks = [r["rounds"] for r in data["ranks"]]
    modes: dict[str, Any] = {}
    for mode in MODES:
        times = [t for rnd in ranks[0] for t in rnd[mode]["batch_s"]]
        med = float(np.median(times))
        modes[mode] = {"samples_per_s": batch / med, "median_batch_s": med, "n_batches": len(times),
                       "cpu_per_wall": [float(np.median([rnd[mode]["cpu_per_wall"] for rnd in rk
                                                          if rnd[mode]["cpu_per_wall"] is not None]))
                                        if any(rnd[mode]["cpu_per_wall"] is not None for rnd in rk) else None
                                        for rk in ranks]}
    per_round = [np.median(rnd[MODES[0]]["batch_s"]) / np.median(rnd[MODES[2]]["batch_s"]) for rnd in ranks[0]]
    threads = [np.median(rnd[MODES[0]]["batch_s"]) / np.median(rnd[MODES[1]]["batch_s"]) for rnd in ranks[0]]
    comm = [rnd[MODES[2]]["comm_s"] / max(len(rnd[MODES[2]]["batch_s"]), 1) for rnd in ranks[0]]

    def per_cpu_second(mode: str, i: int) -> float:  # samples per CPU-second of all ranks in round i
        return len(ranks[0][i][mode]["batch_s"]) * batch / sum(rk[i][mode]["cpu_s"] for rk in ranks)

    cpu_eff = [per_cpu_second(MODES[2], i) / per_cpu_second(MODES[0], i) for i in range(len(ranks[0]))]
    speedup = {"median": float(np.median(per_round)), "min": float(min(per_round)), "max": float(max(per_round))}
    return {
        "modes": modes,
        "speedup_2_workers": speedup,
        "efficiency_2_workers": {k: v / 2 for k, v in speedup.items()},
        "cpu_efficiency_2_workers": {"median": float(np.median(cpu_eff)), "min": float(min(cpu_eff)),
                                     "max": float(max(cpu_eff))},
        "speedup_2_threads": {"median": float(np.median(threads)), "min": float(min(threads)),
                              "max": float(max(threads))},
        "allreduce_s_per_batch": float(np.median(comm)),
        "allreduce_fraction": float(np.median(comm) / modes[MODES[2]]["median_batch_s"]),
        "allreduce_alone_s": float(np.median(data["ranks"][0]["allreduce_s"])),
        "allreduce_bytes": 4 * data["allreduce_floats"],
        "rounds": rounds,
    }


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log=print) -> dict[str, Any]:
    """Start the two workers, collect their timings, write ``scaling.json`` / ``scaling.md``.

    ``threads`` is ignored (each worker runs one thread: the modes set their own); ``device``
    must be ``cpu`` (the gloo workers run on the CPU)."""
    from tess.distributed import launch

    if device != "cpu":
        raise SystemExit("the scaling benchmark runs gloo workers on the CPU: use --device cpu")
    width = VGG_WIDTH / 2 if quick else VGG_WIDTH
    spec = {"T": 2 if quick else 20, "width": width, "rounds": 1 if quick else ROUNDS,
            "batches": 1 if quick else BATCHES, "allreduces": 5 if quick else 50}
    load_before, running_before = _loadavg(), _running()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".scaling-workers.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "2",
           "OMP_WAIT_POLICY": "PASSIVE"}  # as tess train --threads 2 sets it: idle OpenMP threads sleep
    t0 = time.perf_counter()
    try:
        launch([sys.executable, "-m", "benchmarks.scaling", "--worker", json.dumps(spec), str(tmp)], 2, env=env,
               cwd=ROOT, quiet=False)
        data = json.loads(tmp.read_text())
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    env_info = environment(1)
    env_info.update(loadavg_before=load_before, loadavg_after=_loadavg(), running_before=running_before,
                    running_after=_running())
    summary = summarise(data, spec["rounds"])
    for mode, m in summary["modes"].items():
        log(f"scaling {mode:22s}: {m['samples_per_s']:7.2f} samples/s ({m['median_batch_s']:.2f} s per batch of "
            f"{data['batch']}; CPU/wall per rank {m['cpu_per_wall']})")
    eff = summary["efficiency_2_workers"]
    log(f"scaling parallel efficiency of 2 workers: {eff['median']:.2f} ({eff['min']:.2f}–{eff['max']:.2f}), "
        f"per CPU-second {summary['cpu_efficiency_2_workers']['median']:.2f}; "
        f"all-reduce {1e3 * summary['allreduce_alone_s']:.1f} ms alone, "
        f"{1e3 * summary['allreduce_s_per_batch']:.1f} ms per batch in the step")
    payload = {"benchmark": "scaling", "quick": quick, "width_scale": width, "T": spec["T"], "spec": spec,
               "environment": env_info, "seconds": seconds, "summary": summary, "raw": data}
    write_json(out_dir, "scaling", payload)
    write_markdown(out_dir, "scaling", markdown(payload), env_info)
    return payload


def markdown(payload: dict[str, Any]) -> str:
    """The Markdown report of :func:`run`'s payload (included by the "Scaling out" page)."""
    s, env = payload["summary"], payload["environment"]
    batch = payload["raw"]["batch"]
    rows = [[mode, m["samples_per_s"], m["median_batch_s"], m["n_batches"],
             " / ".join("—" if c is None else f"{c:.2f}" for c in m["cpu_per_wall"])]
            for mode, m in s["modes"].items()]
    eff, sp, th = s["efficiency_2_workers"], s["speedup_2_workers"], s["speedup_2_threads"]
    ce = s["cpu_efficiency_2_workers"]
    info = payload["raw"]["ranks"][0].get("backend", {})
    kernels = f", kernels fuse={info['fuse']}" if "fuse" in info else ""
    return "\n".join([
        f"TESS training throughput on torch {info.get('torch', '')} (float32, CPU{kernels}), VGG-9 width × {payload['width_scale']}, 2×32×32 event "
        f"frames, T = {payload['T']}, global batch {batch} (2 workers: {batch // 2} samples each), "
        f"{s['rounds']} interleaved rounds. Load average (1, 5, 15 min) before {env['loadavg_before']}, after "
        f"{env['loadavg_after']}; runnable/total tasks before {env['running_before']}, after "
        f"{env['running_after']}; {env.get('cpu_count')} cores.\n",
        markdown_table(["mode", "samples/s", "s/batch", "batches", "CPU/wall (rank 0 / rank 1)"], rows),
        f"\nParallel efficiency of 2 workers (samples/s of 2 workers over 2 × those of 1 worker × 1 thread, "
        f"median over rounds): **{eff['median']:.2f}** (range {eff['min']:.2f}–{eff['max']:.2f}; speedup "
        f"{sp['median']:.2f}×). One worker with 2 threads: {th['median']:.2f}× (range {th['min']:.2f}–"
        f"{th['max']:.2f}). Per CPU-second (samples over the CPU time of both ranks, which discounts the time a "
        f"worker waited for a core on a shared machine): 2 workers reach **{ce['median']:.2f}** (range "
        f"{ce['min']:.2f}–{ce['max']:.2f}) of one worker's samples per CPU-second. The all-reduce of the {s['allreduce_bytes'] / 2**20:.1f} MiB of gradients (and the "
        f"totals) takes {1e3 * s['allreduce_alone_s']:.1f} ms alone (median of back-to-back calls); inside the "
        f"training step, waiting for the slower rank included, {1e3 * s['allreduce_s_per_batch']:.1f} ms per "
        f"batch ({100 * s['allreduce_fraction']:.1f}% of the 2-worker batch time). CPU/wall is each worker's "
        "CPU time over the mode's wall time: 1.0 a core to itself, below 1 it waited for a core (or, idle, for "
        "the other rank); rank 0 with 2 threads reaches 2.0 when both cores work.\n",
    ])


if __name__ == "__main__":  # a worker process: python -m benchmarks.scaling --worker SPEC OUT
    if len(sys.argv) != 4 or sys.argv[1] != "--worker":
        raise SystemExit("usage: python -m benchmarks scaling (this module's own entry point is for its workers)")
    worker(json.loads(sys.argv[2]), sys.argv[3])
