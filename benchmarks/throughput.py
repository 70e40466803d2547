"""Throughput: training samples per second of TESS on every backend that runs here
(the built-in ones of ``tess.list_backends()``, skipping those that raise
:class:`~tess.errors.BackendUnavailableError`; registered third-party backends are
listed, not timed) and of BPTT (the torch backend's ``method="bptt"``), on the same
network and data: the reduced VGG (T = 20, batch 16) and the digits MLP (T = 6, batch 32).

The first batch (warm-up: lazy initialisation, JIT compilation) is timed and reported
separately, and so is a backend's ``compile_seconds`` when it has one (JAX: tracing,
lowering and XLA compilation).  The steady state is measured in *interleaved rounds*:
each round times one batch of every backend in turn, so a change in the machine's load
hits all of them alike; ratios are the median over rounds of the per-round ratio (with
their range), and the load average before and after is recorded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import RESULTS_DIR, VGG_WIDTH, batch_data, environment, markdown_table, network_config, write_json, write_markdown

NETS = {"vgg": 20, "mlp": 6}  # net → T

RATIOS = {  # name → (numerator row, denominator row): a ratio of throughputs (samples/s)
    "torch_over_numpy": (("tess", "torch"), ("tess", "numpy")),
    "jax_over_torch": (("tess", "jax"), ("tess", "torch")),
    "tess_torch_over_bptt": (("tess", "torch"), ("bptt", "torch")),
}


def _setup(name: str, config, x: np.ndarray, y: np.ndarray, method: str = "tess") -> tuple[Any, Callable[[], None]]:
    """A backend (or a ``skipped`` reason string) and a function that trains one batch on it."""
    import tess
    from tess.errors import TessError
    from tess_spec import init_opt_state, init_params, make_rng

    try:
        backend = tess.get_backend(name, dtype="float32", **({} if method == "tess" else {"method": method}))
    except TessError as exc:
        return f"{type(exc).__name__}: {exc}", lambda: None
    np_params = {k: v.astype(np.float32) for k, v in init_params(config, make_rng(0)).items()}
    state = {"p": backend.params_from_numpy(np_params),
             "o": backend.opt_state_from_numpy(init_opt_state(config, np_params))}

    def step() -> None:
        out = backend.train_batch(config, state["p"], state["o"], x, y)  # returns the host loss: work finished
        state["p"], state["o"] = out.params, out.opt_state

    return backend, step


def _timed(step: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def _row(method: str, backend: Any, batch: int, first: float, times: list[float]) -> dict[str, Any]:
    steady = float(np.median(times))
    compile_s = getattr(backend, "compile_seconds", None)
    return {"method": method, "backend": backend.name, "device": backend.info().get("device", ""), "batch": batch,
            "first_batch_s": first, "compile_s": compile_s, "steady_batch_s": steady,
            "samples_per_s": batch / steady, "n_batches": len(times), "batch_s": times}


def measure_interleaved(entries: list[tuple[str, str]], config, x: np.ndarray, y: np.ndarray,
                        n: int) -> list[dict[str, Any]]:
    """Warm up every ``(method, backend)`` entry once, then ``n`` rounds timing one batch of each in turn."""
    setups = [(m, name, *_setup(name, config, x, y, m)) for m, name in entries]
    live = [(m, be, step) for m, name, be, step in setups if not isinstance(be, str)]
    first = {id(be): _timed(step) for _, be, step in live}
    times: dict[int, list[float]] = {id(be): [] for _, be, _ in live}
    for _ in range(n):
        for _, be, step in live:
            times[id(be)].append(_timed(step))
    rows = []
    for m, name, be, _ in setups:
        if isinstance(be, str):
            rows.append({"method": m, "backend": name, "skipped": be})
        else:
            rows.append(_row(m, be, x.shape[0], first[id(be)], times[id(be)]))
    return rows


def measure_tess(name: str, config, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
    """Time ``n`` TESS batches (after one warm-up batch) on backend ``name``."""
    return measure_interleaved([("tess", name)], config, x, y, n)[0]


def measure_bptt(config, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
    """Time ``n`` BPTT batches (after one warm-up batch): the torch backend's ``method="bptt"``."""
    return measure_interleaved([("bptt", "torch")], config, x, y, n)[0]


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float] | None]:
    """Per :data:`RATIOS` entry: the median, min and max over rounds of the per-round throughput ratio."""
    by = {(r["method"], r["backend"]): r for r in rows if "skipped" not in r}
    out: dict[str, dict[str, float] | None] = {}
    for name, (num, den) in RATIOS.items():
        if num not in by or den not in by:
            out[name] = None
            continue
        per_round = np.asarray(by[den]["batch_s"]) / np.asarray(by[num]["batch_s"])  # time ratio = throughput ratio
        out[name] = {"median": float(np.median(per_round)), "min": float(per_round.min()),
                     "max": float(per_round.max())}
    return out


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log=print) -> dict[str, Any]:
    """Measure every backend and BPTT on both networks; write ``throughput.json`` / ``.md``."""
    import tess
    from tess.registry import BUILTINS

    if threads:
        import torch

        torch.set_num_threads(threads)
    width = VGG_WIDTH / 2 if quick else VGG_WIDTH
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {}
    for net, T in NETS.items():
        config = network_config(net, T, width)
        x, y = batch_data(config)
        n = (1 if quick else 5) if net == "vgg" else (2 if quick else 20)
        names = tess.list_backends()
        rows = measure_interleaved([("tess", b) for b in names if b in BUILTINS] + [("bptt", "torch")],
                                   config, x, y, n)
        rows += [{"method": "tess", "backend": b, "skipped": "third-party backend (only built-in ones are compared)"}
                 for b in names if b not in BUILTINS]
        for r in rows:
            log(f"throughput {net:4s} {r['method']:5s} {r['backend']:18s}: "
                + (f"skipped ({r['skipped']})" if "skipped" in r else
                   f"{r['samples_per_s']:8.1f} samples/s (first batch {r['first_batch_s']:.2f}s"
                   + ("" if r["compile_s"] is None else f", compile {r['compile_s']:.2f}s") + ")"))
        results[net] = rows
    env = environment(threads)
    env["loadavg_before"] = [round(v, 2) for v in load_before]
    env["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    rat = {net: ratios(rows) for net, rows in results.items()}
    payload = {"benchmark": "throughput", "quick": quick, "width_scale": width, "T": NETS,
               "environment": env, "results": results, "ratios": rat}
    write_json(out_dir, "throughput", payload)
    lines = [f"Training throughput (float32, {device}, torch threads = {env.get('torch_threads')}). "
             f"`vgg`: VGG-9 width × {width}, 2×32×32 event frames, T = 20, batch 16; `mlp`: digits MLP, T = 6, "
             "batch 32. Steady state: the median over interleaved rounds (one batch of every backend per round); "
             "the first batch (warm-up, compilation) and the compile time are reported separately. "
             f"Load average (1, 5, 15 min) before {env['loadavg_before']}, after {env['loadavg_after']}.\n"]
    table = []
    for net, rows in results.items():
        for r in rows:
            if "skipped" in r:
                table.append([net, r["method"], r["backend"], None, None, None, None, "skipped: " + r["skipped"][:80]])
            else:
                table.append([net, r["method"], r["backend"], r["samples_per_s"], r["steady_batch_s"],
                              r["first_batch_s"], r["compile_s"], f"{r['n_batches']} rounds"])
    lines.append(markdown_table(["net", "method", "backend", "samples/s", "s/batch", "first batch (s)", "compile (s)",
                                 "note"], table))

    def cell(v: dict[str, float] | None) -> str | None:
        return None if v is None else f"{v['median']:.2f} ({v['min']:.2f}–{v['max']:.2f})"

    lines.append("\nThroughput ratios, median over rounds (range):\n")
    lines.append(markdown_table(["net", "TESS torch / numpy", "TESS jax / torch", "TESS torch / BPTT"],
                                [[net, cell(r["torch_over_numpy"]), cell(r["jax_over_torch"]),
                                  cell(r["tess_torch_over_bptt"])] for net, r in rat.items()]))
    write_markdown(out_dir, "throughput", "\n".join(lines), env)
    return payload
