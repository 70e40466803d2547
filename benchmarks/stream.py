"""Streaming learner: latency of one ``Learner.step`` (batch 1) and resident memory over
a long stream.

* **Latency**, per MLP preset (``mlp_digits``: 64-256-256, direct input, T = 6;
  ``mlp_events``: 128-256-256, event frames, T = 8; float32, every step in the learning
  window, one optimiser step per segment) and per backend (numpy, torch CPU, jax — its
  per-step functions compiled once with ``jax.jit``; the compile time is reported
  apart).  After a warm-up of two segments, the backends are timed in *interleaved
  rounds* — each round times ``STEPS`` consecutive steps of every backend in turn — so a
  change in the machine's load hits them alike; every step is timed on its own
  (``time.perf_counter``, including the host copy of its logits) and the table gives
  the median, the mean (which includes the segment-end optimiser steps) and the 90th
  percentile, plus the median ``predict_step``.  The load average before and after is
  recorded.
* **Memory**: a fresh process (numpy, ``mlp_events``, batch 1, one thread) streams
  10^6 steps (``--quick``: 10^4) from a pool of 1,000 frames, reading its resident set
  (``VmRSS``, after ``gc.collect()``) at 10^3, 10^4, 10^5 and 10^6 steps, and the
  peak (``VmHWM``) at the end.  The claim: RSS after 10^6 steps within 1 % of RSS after
  10^3.  It takes about 15-30 minutes on a shared 2-core machine.

* **Online learning**: ``mlp_events`` on numpy (float32, batch 1) streams the training
  split of the shipped events dataset once (1,200 samples, the label with each
  segment's first frame, one update per segment), then the test split in inference
  mode; the online accuracy per tenth of the stream (each segment predicted before
  its own update), over its last 20 %, and the test accuracy (what ``tess stream
  --dataset events`` prints).

``python -m benchmarks stream`` runs all three; ``python -m benchmarks.stream --part
latency`` (or ``memory``, ``online``; repeatable) runs those and keeps the other parts
of an existing ``stream.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import RESULTS_DIR, environment, markdown_table, mib, write_json, write_markdown

PARTS = ("latency", "memory", "online")
"""The parts of the benchmark, in the order they run."""
PRESETS = ("mlp_digits", "mlp_events")
BACKENDS = ("numpy", "torch", "jax")
ROUNDS, STEPS = 10, 200
QUICK_ROUNDS, QUICK_STEPS = 2, 30
MEMORY_MARKS = (10**3, 10**4, 10**5, 10**6)
QUICK_MEMORY_MARKS = (10**3, 10**4)
POOL = 1000


def _stream_data(config: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A pool of :data:`POOL` float32 frames (event frames with 10 % events; a direct input's
    images in [0, 1)) and :data:`POOL` labels, one per segment."""
    rng = np.random.default_rng(seed)
    shape = config.network.input_shape
    if shape == (128,):  # events: binary frames
        x = (rng.random((POOL, *shape)) < 0.1).astype(np.float32)
    else:
        x = rng.random((POOL, *shape)).astype(np.float32)
    return x, rng.integers(0, config.network.n_classes, POOL)


def _stepper(learner: Any, x: np.ndarray, y: np.ndarray, direct: bool) -> Callable[[], None]:
    """A function taking the learner's next step: frame ``x[segment]`` repeated for a direct
    input, else ``x[step]``; the segment's label with its first frame."""
    T = learner.T

    def step() -> None:
        i = learner.steps
        seg, t = divmod(i, T)
        frame = x[seg % POOL] if direct else x[i % POOL]
        learner.step(frame, label=int(y[seg % POOL]) if t == 0 else None)

    return step


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return None


def measure_latency(presets: tuple[str, ...] = PRESETS, backends: tuple[str, ...] = BACKENDS, *,
                    rounds: int = ROUNDS, steps: int = STEPS, threads: int | None = None,
                    log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Per preset and backend: µs per ``step`` (median, mean, p90 over ``rounds × steps``
    interleaved steps), median µs per ``predict_step``, the compile time and the load."""
    from tess.errors import TessError
    from tess.stream import Learner
    from tess_spec import get_preset

    rows = []
    for preset in presets:
        config = get_preset(preset)
        x, y = _stream_data(config)
        direct = preset == "mlp_digits"
        learners, fns, first = {}, {}, {}
        for name in backends:
            try:
                t0 = time.perf_counter()
                options = {"threads": threads} if name == "torch" and threads else {}
                learner = Learner(config, name, batch=1, dtype="float32", **options)
                fn = _stepper(learner, x, y, direct)
                for _ in range(2 * learner.T):  # warm-up: two segments (JAX compiles here)
                    fn()
                first[name] = time.perf_counter() - t0
            except (TessError, ImportError) as exc:
                rows.append({"preset": preset, "backend": name, "skipped": f"{type(exc).__name__}: {exc}"})
                continue
            learners[name], fns[name] = learner, fn
        times: dict[str, list[float]] = {n: [] for n in learners}
        applied: dict[str, list[bool]] = {n: [] for n in learners}
        load_before = _load()
        for _ in range(rounds):
            for name, fn in fns.items():
                ts, ap, learner = times[name], applied[name], learners[name]
                for _ in range(steps):
                    u0 = learner.updates
                    t0 = time.perf_counter()
                    fn()
                    ts.append(time.perf_counter() - t0)
                    ap.append(learner.updates != u0)
        load_after = _load()
        for name, learner in learners.items():
            pred = []
            for i in range(min(steps, 100)):
                frame = x[i % POOL]
                t0 = time.perf_counter()
                learner.predict_step(frame)
                pred.append(time.perf_counter() - t0)
            us = 1e6 * np.asarray(times[name])
            upd = np.asarray(applied[name], dtype=bool)
            row = {"preset": preset, "backend": name, "steps": len(us), "median_us": float(np.median(us)),
                   "mean_us": float(us.mean()), "p90_us": float(np.percentile(us, 90)),
                   "median_plain_us": float(np.median(us[~upd])) if (~upd).any() else None,
                   "median_update_us": float(np.median(us[upd])) if upd.any() else None,
                   "predict_median_us": float(1e6 * np.median(pred)), "compile_seconds": learner.compile_seconds,
                   "compile_count": learner.compile_count, "warmup_seconds": first[name],
                   "updates": learner.updates, "load_before": load_before, "load_after": load_after,
                   "info": learner.backend.info()}
            rows.append(row)
            log(f"stream latency {preset} {name:6s}: median {row['median_us']:8.1f} µs/step (a step with the "
                f"update {row['median_update_us'] or 0:8.1f}), mean {row['mean_us']:8.1f}; compile "
                f"{row['compile_seconds']:.2f}s")
            learner.close()
    return rows


def _rss() -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of this process in bytes."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out["VmRSS"], out["VmHWM"]


def memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Stream ``spec["marks"][-1]`` steps in this (fresh) process, reading the RSS at each mark."""
    from tess.stream import Learner
    from tess_spec import get_preset

    config = get_preset(spec.get("preset", "mlp_events"))
    learner = Learner(config, spec.get("backend", "numpy"), batch=1, dtype="float32")
    x, y = _stream_data(config)
    fn = _stepper(learner, x, y, direct=config.network.input_shape != (128,))
    marks = sorted(spec["marks"])
    points = []
    t0 = time.perf_counter()
    for mark in marks:
        while learner.steps < mark:
            fn()
        gc.collect()
        rss, hwm = _rss()
        points.append({"steps": mark, "rss_bytes": rss, "hwm_bytes": hwm, "seconds": time.perf_counter() - t0,
                       "updates": learner.updates, "load": _load()})
    held = learner.state_dict()
    nbytes = sum(a.nbytes for a in _arrays(held))
    return {**spec, "points": points, "learner_array_bytes": nbytes, "updates": learner.updates,
            "us_per_step": 1e6 * (time.perf_counter() - t0) / marks[-1]}


def _arrays(tree: Any) -> list[np.ndarray]:
    if isinstance(tree, np.ndarray):
        return [tree]
    if isinstance(tree, dict):
        return [a for v in tree.values() for a in _arrays(v)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in _arrays(v)]
    return []


def measure_memory(marks: tuple[int, ...] = MEMORY_MARKS, threads: int | None = 1) -> dict[str, Any]:
    """:func:`memory_worker` in a fresh single-threaded process; adds the RSS ratios to the first mark."""
    env = {**os.environ}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads or 1)
    spec = {"preset": "mlp_events", "backend": "numpy", "marks": list(marks), "threads": threads or 1}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.stream", "worker", json.dumps(spec)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {**spec, "error": lines[-1] if lines else f"rc {proc.returncode}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    base = res["points"][0]["rss_bytes"]
    for p in res["points"]:
        p["rss_over_first"] = p["rss_bytes"] / base
    res["rss_last_over_first"] = res["points"][-1]["rss_bytes"] / base
    return res


def measure_online(limit: int | None = None, points: int = 10) -> dict[str, Any]:
    """Stream the events dataset's training split once (learning) and its test split
    (inference) through a numpy ``mlp_events`` learner; the online-accuracy curve."""
    from tess.datasets import load_dataset
    from tess.stream import Learner
    from tess_spec import get_preset

    config = get_preset("mlp_events")
    train, test = load_dataset("events", shape="flat", T=config.train.T)
    learner = Learner(config, "numpy", batch=1, dtype="float32")
    n = len(train) if limit is None else min(limit, len(train))
    correct = np.zeros(n, dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(n):
        for t in range(config.train.T):
            learner.step(train.x[i, t], label=int(train.y[i]) if t == 0 else None)
        correct[i] = learner.last_segment.n_correct
    seconds = time.perf_counter() - t0
    edges = np.linspace(0, n, points + 1).astype(int)
    curve = [{"samples": int(hi), "from": int(lo) + 1, "accuracy": float(correct[lo:hi].mean())}
             for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    m = len(test) if limit is None else min(limit, len(test))
    test_correct = 0
    for i in range(m):
        for t in range(config.train.T):
            learner.predict_step(test.x[i, t])
        test_correct += int(learner.last_segment.predictions[0] == test.y[i])
    return {"preset": "mlp_events", "backend": "numpy", "dataset": "events", "train_samples": n,
            "test_samples": m, "chance": 1 / config.network.n_classes, "curve": curve,
            "accuracy": float(correct.mean()), "accuracy_last_20pct": float(correct[int(0.8 * n):].mean()),
            "test_accuracy": test_correct / m if m else None, "updates": learner.updates,
            "seconds": seconds, "command": "tess stream --dataset events --backend numpy"}


def _command() -> str:
    """The command line of this run (``python -m benchmarks …`` or ``python -m benchmarks.stream …``)."""
    module = "benchmarks.stream" if Path(sys.argv[0]).name == "stream.py" else "benchmarks"
    return " ".join(["python -m", module, *sys.argv[1:]])


def _ran(env: dict[str, Any]) -> dict[str, Any]:
    """Where and when a part ran: the command, the time, the load average (1 min)."""
    return {"command": _command(), "time": env.get("time"), "load": _load()}


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None, device: str = "cpu",
        log: Callable[[str], None] = print, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    """Run the parts and write ``stream.json`` / ``stream.md`` (a part not run is kept from an
    existing ``stream.json``)."""
    payload: dict[str, Any] = {"benchmark": "stream", "quick": quick, "environment": environment(threads),
                               **{part: None for part in PARTS}}
    env = payload["environment"]
    if "latency" in parts:
        rounds, steps = (QUICK_ROUNDS, QUICK_STEPS) if quick else (ROUNDS, STEPS)
        payload["latency"] = {"rounds": rounds, "steps_per_round": steps, "threads": threads, "ran": _ran(env),
                              "rows": measure_latency(rounds=rounds, steps=steps, threads=threads,
                                                      log=log)}
    if "memory" in parts:
        marks = QUICK_MEMORY_MARKS if quick else MEMORY_MARKS
        log(f"stream memory: {marks[-1]:,} steps in a fresh process (numpy, mlp_events, batch 1, one thread)…")
        payload["memory"] = m = {**measure_memory(marks), "ran": _ran(env)}
        log("stream memory: " + (m["error"] if "error" in m else
                                 f"RSS after {marks[-1]:,} steps / after {marks[0]:,}: {m['rss_last_over_first']:.4f}"))
    if "online" in parts:
        payload["online"] = o = {**measure_online(limit=60 if quick else None), "ran": _ran(env)}
        log(f"stream online: accuracy over the last 20% of the training stream {100 * o['accuracy_last_20pct']:.1f}% "
            f"(chance {100 * o['chance']:.1f}%), test {100 * (o['test_accuracy'] or 0):.1f}%")
    path = out_dir / "stream.json"
    if path.is_file() and set(parts) != set(PARTS):  # keep the parts not run (read now: another
        old = json.loads(path.read_text())          # run of the other parts may have written meanwhile)
        for part in set(PARTS) - set(parts):
            payload[part] = old.get(part)
    write_json(out_dir, "stream", payload)
    write_markdown(out_dir, "stream", markdown(payload) + _machine(env))
    return payload


def _machine(env: dict[str, Any]) -> str:
    """The machine and versions line of ``stream.md`` (each part names its own command)."""
    versions = ", ".join(f"{k} {env[k]}" for k in ("python", "numpy", "torch") if env.get(k))
    gpu = f"GPU {env['cuda']}" if env.get("cuda") else "no GPU"
    return f"\n_Machine: {env.get('cpu') or env.get('machine')}, {env.get('cpu_count')} cores, {gpu}; {versions}._\n"


def _ran_line(part: dict[str, Any]) -> str:
    ran = part.get("ran") or {}
    load = f", load average {ran['load']:.2f} at the end" if ran.get("load") is not None else ""
    return f"\n_Measured by `{ran.get('command', '?')}` on {ran.get('time', '?')}{load}._\n"


def markdown(payload: dict[str, Any]) -> str:
    """The tables of ``stream.md``."""
    text = []
    lat = payload.get("latency")
    if lat:
        rows = lat["rows"]
        loads = [r[k] for r in rows for k in ("load_before", "load_after") if r.get(k) is not None]
        text.append(f"Latency of one `Learner.step` in µs (batch 1, float32, CPU, every step in the learning window, "
                    f"one optimiser step per segment: at its last step), {lat['rounds']} interleaved rounds of "
                    f"{lat['steps_per_round']} steps per backend after a two-segment warm-up; load average (1 min) "
                    f"{min(loads, default=0):.2f}–{max(loads, default=0):.2f} during the measurement. Medians of the "
                    "steps without and with the optimiser step, the mean over all steps, and the median "
                    "`predict_step` (no learning).\n")
        table = []
        for r in rows:
            if "skipped" in r:
                table.append([r["preset"], r["backend"], None, None, None, None, None, r["skipped"]])
                continue
            table.append([r["preset"], r["backend"], r.get("median_plain_us"), r.get("median_update_us"),
                          r["mean_us"], r["predict_median_us"],
                          r["compile_seconds"] if r["backend"] == "jax" else None, ""])
        text.append(markdown_table(["preset", "backend", "step", "step + update", "mean", "predict_step",
                                    "compile (s)", "note"], table))
        text.append(_ran_line(lat))
    mem = payload.get("memory")
    if mem:
        if "error" in mem:
            text.append(f"\nMemory: error: {mem['error']}\n")
        else:
            text.append(f"\nResident memory of one process streaming `mlp_events` on numpy (batch 1, one thread); the "
                        f"learner's own arrays (parameters, Adam moments, state, sums) are "
                        f"{mem['learner_array_bytes'] / 2**10:.0f} KiB; {mem['us_per_step']:.0f} µs per step on "
                        f"average over the run.\n")
            table = [[f"{p['steps']:,}", f"{mib(p['rss_bytes']):.2f}", f"{p['rss_over_first']:.5f}",
                      f"{mib(p['hwm_bytes']):.2f}", p["updates"], p["seconds"]] for p in mem["points"]]
            text.append(markdown_table(["steps", "RSS (MiB)", "RSS / RSS at first mark", "peak RSS (MiB)",
                                        "updates", "elapsed (s)"], table))
            text.append(_ran_line(mem))
    onl = payload.get("online")
    if onl:
        text.append(f"\nOnline learning: `{onl['command']}` — `{onl['preset']}` on {onl['backend']}, batch 1, the "
                    f"{onl['train_samples']:,} training samples of the shipped `{onl['dataset']}` dataset streamed "
                    "once "
                    f"(one update per segment), each segment predicted before its own update. Online accuracy "
                    f"over the last 20 % of the training stream: **{100 * onl['accuracy_last_20pct']:.1f} %** (chance "
                    f"{100 * onl['chance']:.1f} %); the {onl['test_samples']} test samples streamed afterwards in "
                    f"inference mode: {100 * (onl['test_accuracy'] or 0):.1f} %.\n")
        text.append(markdown_table(["training samples", "online accuracy (%)"],
                                   [[f"{p['from']:,}–{p['samples']:,}", f"{100 * p['accuracy']:.1f}"]
                                    for p in onl["curve"]]))
        text.append(_ran_line(onl))
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.stream [--part latency|memory|online] [--quick] [--out DIR] [--threads N]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=PARTS, action="append", default=None,
                   help="which part to run (repeatable) [all]")
    p.add_argument("--quick", action="store_true", help="smoke run: fewer rounds, 10^4 steps")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"output folder [{RESULTS_DIR}]")
    p.add_argument("--threads", type=int, default=1, help="threads of every framework [1]")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    from threadpoolctl import threadpool_limits  # numpy (OpenBLAS) is loaded already: limit it in place

    with threadpool_limits(limits=args.threads):
        run(args.out, quick=args.quick, threads=args.threads, parts=tuple(args.part or PARTS),
            log=lambda s: print(s, flush=True))
    print(f"wrote {args.out / 'stream.json'} and {args.out / 'stream.md'}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        print(json.dumps(memory_worker(json.loads(sys.argv[2]))))
    else:
        sys.exit(main())
