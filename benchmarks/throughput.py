"""Throughput: training samples per second of TESS on every backend that runs here
(the built-in ones of ``tess.list_backends()``, skipping those that raise
:class:`~tess.errors.BackendUnavailableError`; registered third-party backends are
listed, not timed), of the torch backend's other step implementations (``fuse="none"``:
the step before fusion, kept as the baseline of the same run; ``"eager"``; ``"compile"``)
and of BPTT (the torch backend's ``method="bptt"``), on the same network and data: the
reduced VGG (T = 20, batch 16) and the digits MLP (T = 6, batch 32).

Next to samples/s every row reports its **achieved GFLOP/s** — the convolution and
matrix-product FLOPs of one training step (``2 × Complexity.product_macs`` of
:func:`tess.complexity`; :func:`flop_check` confirms the count with
:class:`torch.utils.flop_counter.FlopCounterMode` on one torch batch) over the measured
time — and that as a **fraction of the CPU's fp32 matmul peak** on the same threads,
measured in the same run (:func:`matmul_peak`: a 2048² ``torch.mm``, best of a few, once
before the rounds and once per round; the best counts).

The first batch (warm-up: lazy initialisation, JIT compilation, building the native
kernels) is timed and reported separately, and so is a backend's ``compile_seconds`` when
it has one (JAX: tracing, lowering and XLA compilation; torch ``fuse="compile"``:
inductor).  The steady state is measured in *interleaved rounds*: each round times one
batch of every entry in turn, so a change in the machine's load hits all of them alike;
ratios are the median over rounds of the per-round ratio (with their range).  Each
batch's process CPU time is recorded next to its wall time: on a shared machine, with
one thread, the CPU-time ratio is the steadier one.  The load average before and after
is recorded.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import (RESULTS_DIR, VGG_WIDTH, batch_data, environment, markdown_table, network_config, pin_one_cpu,
                     provenance, write_json, write_markdown)

NETS = {"vgg": 20, "mlp": 6}  # net → T

TORCH_VARIANTS: tuple[dict[str, Any], ...] = ({"fuse": "none"}, {"fuse": "eager"}, {"fuse": "compile"})
"""Further torch TESS entries, timed next to the default one (``fuse="auto"``)."""

RATIOS = {  # name → (numerator row, denominator row): a ratio of throughputs (samples/s)
    "torch_over_before": (("tess", "torch"), ("tess", "torch[fuse=none]")),
    "torch_over_numpy": (("tess", "torch"), ("tess", "numpy")),
    "jax_over_torch": (("tess", "jax"), ("tess", "torch")),
    "tess_torch_over_bptt": (("tess", "torch"), ("bptt", "torch")),
}

Entry = tuple[str, str, dict[str, Any]]
"""``(method, backend name, options)`` of one timed row."""


def label(name: str, options: dict[str, Any]) -> str:
    """A row's name: the backend, with its options in brackets (``torch[fuse=none]``)."""
    return name + ("[" + ",".join(f"{k}={v}" for k, v in options.items()) + "]" if options else "")


def matmul_peak(n: int = 2048, repeats: int = 3) -> dict[str, float]:
    """fp32 ``torch.mm`` of two ``n × n`` matrices on torch's current threads: the best GFLOP/s
    of ``repeats`` products by wall time and by process CPU time (after one warm-up)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        torch.mm(a, b)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    flops = 2.0 * n**3
    return {"gflops_wall": flops / best_wall / 1e9, "gflops_cpu": flops / max(best_cpu, 1e-9) / 1e9}


def step_flops(config, method: str = "tess", batch: int | None = None, *, direct_input: bool = False) -> float:
    """Convolution and matrix-product FLOPs of one training batch (of ``batch`` sequences, default
    the config's), as the backends compute it: ``2 × product_macs`` of :func:`tess.complexity`
    with the fused pool-and-basis LSG matrix (TESS: forward, LSG, correlations, with a direct
    input's first current once per sequence; BPTT: forward and backward)."""
    import tess

    direct = direct_input and method == "tess"
    return 2.0 * tess.complexity(config, method=method, batch=batch, lsg="fused", direct_input=direct).product_macs


def flop_check(config, x: np.ndarray, y: np.ndarray, method: str = "tess") -> dict[str, float]:
    """FLOPs of one torch batch (TESS with ``fuse="none"``, or ``method="bptt"``) as
    :class:`torch.utils.flop_counter.FlopCounterMode` counts them, next to :func:`step_flops` at
    the same batch size (their ratio should be 1)."""
    from torch.utils.flop_counter import FlopCounterMode

    import tess
    from tess_spec import init_opt_state, init_params, make_rng

    be = tess.get_backend("torch", dtype="float32", fuse="none", method=method)
    p = {k: v.astype(np.float32) for k, v in init_params(config, make_rng(0)).items()}
    params, opt = be.params_from_numpy(p), be.opt_state_from_numpy(init_opt_state(config, p))
    with FlopCounterMode(display=False) as counter:
        be.train_batch(config, params, opt, x, y)
    counted = float(counter.get_total_flops())
    model = step_flops(config, method, int(x.shape[0]), direct_input=_direct(config, x))
    return {"flop_counter": counted, "complexity": model, "ratio": counted / model if model else None}


def _direct(config, x: np.ndarray) -> bool:
    return x.ndim == len(config.network.input_shape) + 1


def _setup(name: str, config, x: np.ndarray, y: np.ndarray, method: str = "tess",
           options: dict[str, Any] | None = None) -> tuple[Any, Callable[[], None]]:
    """A backend (or a ``skipped`` reason string) and a function that trains one batch on it."""
    import tess
    from tess.errors import TessError
    from tess_spec import init_opt_state, init_params, make_rng

    kw = dict(options or {})
    if method != "tess":
        kw["method"] = method
    try:
        backend = tess.get_backend(name, dtype="float32", **kw)
    except TessError as exc:
        return f"{type(exc).__name__}: {exc}", lambda: None
    np_params = {k: v.astype(np.float32) for k, v in init_params(config, make_rng(0)).items()}
    state = {"p": backend.params_from_numpy(np_params),
             "o": backend.opt_state_from_numpy(init_opt_state(config, np_params))}

    def step() -> None:
        out = backend.train_batch(config, state["p"], state["o"], x, y)  # returns the host loss: work finished
        state["p"], state["o"] = out.params, out.opt_state

    return backend, step


def _timed(step: Callable[[], None]) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    step()
    return time.perf_counter() - t0, time.process_time() - c0


def _row(method: str, name: str, options: dict[str, Any], backend: Any, batch: int, first: float,
         times: list[float], cpu: list[float], flops: float | None) -> dict[str, Any]:
    steady, steady_cpu = float(np.median(times)), float(np.median(cpu))
    compile_s = getattr(backend, "compile_seconds", None)
    info = backend.info()
    row = {"method": method, "backend": name, "label": label(name, options), "options": options,
           "device": info.get("device", ""), "fuse": info.get("fuse"), "batch": batch,
           "first_batch_s": first, "compile_s": compile_s, "steady_batch_s": steady, "steady_cpu_s": steady_cpu,
           "samples_per_s": batch / steady, "n_batches": len(times), "batch_s": times, "cpu_s": cpu}
    if flops:
        row.update(gflop_per_batch=flops / 1e9, gflops=flops / steady / 1e9, gflops_cpu=flops / steady_cpu / 1e9)
    return row


def measure_interleaved(entries: list[Entry] | list[tuple[str, str]], config, x: np.ndarray, y: np.ndarray,
                        n: int, *, peak: bool = False) -> list[dict[str, Any]]:
    """Warm up every ``(method, backend[, options])`` entry once, then ``n`` rounds timing one batch
    of each in turn (with ``peak``, each round also times :func:`matmul_peak`; the rows then
    carry ``fraction_of_peak``)."""
    full = [(e[0], e[1], dict(e[2]) if len(e) > 2 else {}) for e in entries]
    setups = [(m, name, opts, *_setup(name, config, x, y, m, opts)) for m, name, opts in full]
    live = [(m, be, step) for m, name, opts, be, step in setups if not isinstance(be, str)]
    first = {id(be): _timed(step)[0] for _, be, step in live}
    times: dict[int, list[float]] = {id(be): [] for _, be, _ in live}
    cpu: dict[int, list[float]] = {id(be): [] for _, be, _ in live}
    peaks = [matmul_peak()] if peak else []
    for _ in range(n):
        for _, be, step in live:
            wall, c = _timed(step)
            times[id(be)].append(wall)
            cpu[id(be)].append(c)
        if peak:
            peaks.append(matmul_peak())
    flops = {m: step_flops(config, m, int(x.shape[0]), direct_input=_direct(config, x)) for m in {m for m, _, _ in full}}
    rows = []
    for m, name, opts, be, _ in setups:
        if isinstance(be, str):
            rows.append({"method": m, "backend": name, "label": label(name, opts), "options": opts, "skipped": be})
            continue
        r = _row(m, name, opts, be, x.shape[0], first[id(be)], times[id(be)], cpu[id(be)], flops.get(m))
        if peaks:
            pw, pc = max(p["gflops_wall"] for p in peaks), max(p["gflops_cpu"] for p in peaks)
            r.update(peak_gflops=pw, peak_gflops_cpu=pc, fraction_of_peak=r["gflops"] / pw,
                     fraction_of_peak_cpu=r["gflops_cpu"] / pc)
        rows.append(r)
    return rows


def measure_tess(name: str, config, x: np.ndarray, y: np.ndarray, n: int, **options: Any) -> dict[str, Any]:
    """Time ``n`` TESS batches (after one warm-up batch) on backend ``name`` (with ``options``)."""
    return measure_interleaved([("tess", name, options)], config, x, y, n)[0]


def measure_bptt(config, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
    """Time ``n`` BPTT batches (after one warm-up batch): the torch backend's ``method="bptt"``."""
    return measure_interleaved([("bptt", "torch")], config, x, y, n)[0]


def ratios(rows: list[dict[str, Any]], clock: str = "batch_s") -> dict[str, dict[str, float] | None]:
    """Per :data:`RATIOS` entry: the median, min and max over rounds of the per-round throughput
    ratio, from wall times (``clock="batch_s"``) or process CPU times (``"cpu_s"``)."""
    by = {(r["method"], r.get("label", r["backend"])): r for r in rows if "skipped" not in r}
    out: dict[str, dict[str, float] | None] = {}
    for name, (num, den) in RATIOS.items():
        if num not in by or den not in by:
            out[name] = None
            continue
        per_round = np.asarray(by[den][clock]) / np.asarray(by[num][clock])  # time ratio = throughput ratio
        out[name] = {"median": float(np.median(per_round)), "min": float(per_round.min()),
                     "max": float(per_round.max())}
    return out


def compile_pays_after(rows: list[dict[str, Any]]) -> float | None:
    """Batches after which torch ``fuse="compile"``'s compile time is repaid against ``fuse="none"``
    (compile seconds / steady seconds saved per batch); ``inf`` when it is not faster; ``None`` if not run."""
    by = {r.get("label"): r for r in rows if "skipped" not in r and r["method"] == "tess"}
    c, b = by.get("torch[fuse=compile]"), by.get("torch[fuse=none]")
    if not c or not b or c.get("compile_s") is None:
        return None
    saved = b["steady_batch_s"] - c["steady_batch_s"]
    return float(c["compile_s"] / saved) if saved > 0 else float("inf")


def entries(names: list[str], builtins: Any, quick: bool) -> list[Entry]:
    """What a run times: every built-in backend's TESS, the torch variants (without
    ``fuse="compile"`` in a quick run) and BPTT on torch."""
    out: list[Entry] = [("tess", b, {}) for b in names if b in builtins]
    if "torch" in names:
        out += [("tess", "torch", dict(v)) for v in TORCH_VARIANTS if not (quick and v.get("fuse") == "compile")]
    return out + [("bptt", "torch", {})]


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log=print) -> dict[str, Any]:
    """Measure every entry on both networks; write ``throughput.json`` / ``.md``."""
    import tess
    from tess.registry import BUILTINS

    if threads:
        import torch

        torch.set_num_threads(threads)
    pinned = pin_one_cpu(threads)
    width = VGG_WIDTH / 2 if quick else VGG_WIDTH
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {}
    checks: dict[str, dict[str, float]] = {}
    for net, T in NETS.items():
        config = network_config(net, T, width)
        x, y = batch_data(config)
        n = (1 if quick else 5) if net == "vgg" else (2 if quick else 20)
        names = tess.list_backends()
        rows = measure_interleaved(entries(names, BUILTINS, quick), config, x, y, n, peak=True)
        rows += [{"method": "tess", "backend": b, "label": b, "options": {},
                  "skipped": "third-party backend (only built-in ones are compared)"}
                 for b in names if b not in BUILTINS]
        for r in rows:
            log(f"throughput {net:4s} {r['method']:5s} {r['label']:22s}: "
                + (f"skipped ({r['skipped'][:60]})" if "skipped" in r else
                   f"{r['samples_per_s']:8.1f} samples/s, {r['gflops']:6.1f} GFLOP/s "
                   f"({100 * r['fraction_of_peak']:4.1f}% of peak) (first batch {r['first_batch_s']:.2f}s"
                   + ("" if r["compile_s"] is None else f", compile {r['compile_s']:.2f}s") + ")"))
        results[net] = rows
        checks[net] = {}
        for method in ("tess", "bptt"):
            try:
                checks[net][method] = flop_check(config, *batch_data(config, batch=4), method=method)
            except Exception as exc:  # the check is a confirmation, not the measurement
                checks[net][method] = {"error": f"{type(exc).__name__}: {exc}"}
    env = environment(threads)
    env["loadavg_before"] = [round(v, 2) for v in load_before]
    env["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    env["cpu_affinity"] = pinned
    rat = {net: ratios(rows) for net, rows in results.items()}
    rat_cpu = {net: ratios(rows, "cpu_s") for net, rows in results.items()}
    pays = {net: compile_pays_after(rows) for net, rows in results.items()}
    payload = {"benchmark": "throughput", "quick": quick, "width_scale": width, "T": NETS,
               "environment": env, "results": results, "ratios": rat, "ratios_cpu": rat_cpu,
               "compile_pays_after_batches": pays, "flop_check": checks}
    write_json(out_dir, "throughput", payload)
    write_markdown(out_dir, "throughput", markdown(payload, device), env)
    return payload


def _pinned_text(env: dict[str, Any]) -> str:
    cpus = env.get("cpu_affinity")
    if not cpus:
        return ""
    return (f"The process is pinned to CPU {', '.join(map(str, cpus))} (`--threads 1`: XLA's thread pool ignores "
            "the thread settings, so JAX would otherwise use a second core). ")


def markdown(payload: dict[str, Any], device: str = "cpu") -> str:
    """The Markdown page of a :func:`run` payload (tables of rows, ratios, the FLOP check)."""
    env, width, results = payload["environment"], payload["width_scale"], payload["results"]
    lines = [f"Training throughput (float32, {device}, torch threads = {env.get('torch_threads')}). "
             f"`vgg`: VGG-9 width × {width}, 2×32×32 event frames, T = 20, batch 16; `mlp`: digits MLP, T = 6, "
             "batch 32. Steady state: the median over interleaved rounds (one batch of every row per round); "
             "the first batch (warm-up, compilation) and the compile time are reported separately. "
             "GFLOP/s: the step's convolution and matrix-product FLOPs (`tess.complexity`) over the median wall "
             "time; % of peak: of the best fp32 2048² `torch.mm` measured in the same run on the same threads "
             f"(VGG {_peak(results.get('vgg'))}, MLP {_peak(results.get('mlp'))} GFLOP/s); the CPU-time columns "
             "divide by the process's CPU time instead (with one thread, what a loaded machine does not inflate). "
             "`torch[fuse=none]` is the torch step before fusion (the engine's default composition). "
             + _pinned_text(env) +
             f"Load average (1, 5, 15 min) before {env['loadavg_before']}, after {env['loadavg_after']}.\n"]
    table = []
    for net, rows in results.items():
        for r in rows:
            name = ("BPTT " if r["method"] == "bptt" else "TESS ") + r.get("label", r["backend"])
            if "skipped" in r:
                table.append([net, name, "skipped: " + r["skipped"].split(": ", 1)[-1][:30] + "…", *([None] * 4)])
                continue
            if r["method"] == "tess" and r["backend"] == "torch" and not r.get("options"):
                name += f" (auto: {r.get('fuse')})"
            peak = None if "fraction_of_peak" not in r else \
                f"{_pct(r['fraction_of_peak'])} / {_pct(r.get('fraction_of_peak_cpu'))}"
            table.append([net, name, r["samples_per_s"], r.get("gflops"), peak, r["first_batch_s"], r["compile_s"]])
    rounds = {net: max((r["n_batches"] for r in rows if "n_batches" in r), default=0) for net, rows in results.items()}
    lines.append("Rounds: " + ", ".join(f"{net} {n}" for net, n in rounds.items()) + ". The JSON file also has "
                 "every batch's wall and CPU time.\n")
    lines.append(markdown_table(["net", "method and backend", "samples/s", "GFLOP/s", "% of peak (wall / CPU)",
                                 "first batch (s)", "compile (s)"], table))

    cell = _cell
    keys = ("torch_over_before", "torch_over_numpy", "jax_over_torch", "tess_torch_over_bptt")
    heads = ["TESS torch / before (fuse=none)", "TESS torch / numpy", "TESS jax / torch", "TESS torch / BPTT"]
    rat, rat_cpu = payload["ratios"], payload.get("ratios_cpu", {})
    lines.append("\nThroughput ratios, median over rounds of the per-round ratio (range), from wall times and "
                 "from process CPU times:\n")
    lines.append(markdown_table(["net", "clock", *heads],
                                [[net, clock, *(cell(src[net].get(k)) for k in keys)]
                                 for net in rat for clock, src in (("wall", rat), ("CPU", rat_cpu)) if net in src]))
    pays = payload.get("compile_pays_after_batches", {})
    if any(v is not None for v in pays.values()):
        lines.append("\n`torch[fuse=compile]` repays its compile time against `fuse=none` after: "
                     + ", ".join(f"{net} {'never (not faster)' if v == float('inf') else f'{v:.0f} batches'}"
                                 for net, v in pays.items() if v is not None) + ".\n")
    checks = payload.get("flop_check", {})
    if checks:
        lines.append("\nFLOP count check: one torch batch (batch 4) under `torch.utils.flop_counter.FlopCounterMode`, "
                     "counted FLOPs / `tess.complexity`'s: "
                     + "; ".join(f"{net} {m} " + (f"{c['ratio']:.3f}" if "error" not in c else c["error"])
                                 for net, d in checks.items() for m, c in d.items()) + ".\n")
    return "\n".join(lines)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{100 * v:.0f}%"


def _peak(rows: list[dict[str, Any]] | None) -> str:
    vals = [r["peak_gflops"] for r in rows or [] if "peak_gflops" in r]
    return f"{vals[0]:.0f}" if vals else "—"


SWEEP = (("vgg", 5), ("vgg", 20), ("vgg", 100), ("mlp", 6))
"""``(net, T)`` of :func:`sweep`: the torch step before and after fusion at short and long T."""


def sweep(out_dir: Path = RESULTS_DIR, *, rounds: int = 5, threads: int | None = None, log=print,
          cases: tuple[tuple[str, int], ...] = SWEEP) -> dict[str, Any]:
    """The torch TESS step (``fuse="auto"``, ``"eager"``) against the step before fusion
    (``fuse="none"``) in interleaved rounds at every ``(net, T)`` of ``cases``; writes
    ``throughput-sweep.json`` / ``.md`` (``python -m benchmarks.throughput sweep``)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    pinned = pin_one_cpu(threads)
    load_before = os.getloadavg()
    rows_by: dict[str, list[dict[str, Any]]] = {}
    for net, T in cases:
        config = network_config(net, T)
        x, y = batch_data(config)
        n = rounds if net == "vgg" else 4 * rounds
        rows = measure_interleaved([("tess", "torch", {"fuse": "none"}), ("tess", "torch", {}),
                                    ("tess", "torch", {"fuse": "eager"})], config, x, y, n, peak=True)
        rows_by[f"{net} T={T}"] = rows
        for r in rows:
            log(f"sweep {net} T={T:3d} {r['label']:18s}: " + (f"skipped ({r['skipped']})" if "skipped" in r else
                f"{r['samples_per_s']:8.1f} samples/s, {r['gflops']:6.1f} GFLOP/s, CPU {r['steady_cpu_s']:.3f} s/batch"))
    env = environment(threads)
    env["loadavg_before"] = [round(v, 2) for v in load_before]
    env["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    env["cpu_affinity"] = pinned
    rat = {k: ratios(rows) for k, rows in rows_by.items()}
    rat_cpu = {k: ratios(rows, "cpu_s") for k, rows in rows_by.items()}
    payload = {"benchmark": "throughput-sweep", "cases": [list(c) for c in cases], "environment": env,
               "results": rows_by, "ratios": rat, "ratios_cpu": rat_cpu}
    write_json(out_dir, "throughput-sweep", payload)
    table = []
    for k, rows in rows_by.items():
        by = {r["label"]: r for r in rows if "skipped" not in r}
        for lab in ("torch[fuse=none]", "torch", "torch[fuse=eager]"):
            r = by.get(lab)
            if r is None:
                continue
            table.append([k, lab + (f" (auto: {r.get('fuse')})" if lab == "torch" else ""), r["samples_per_s"],
                          r["steady_cpu_s"], r.get("gflops"), _pct(r.get("fraction_of_peak")),
                          _pct(r.get("fraction_of_peak_cpu"))])
    lines = [f"The torch TESS step against the step before fusion (`fuse=none`), float32, torch threads = "
             f"{env.get('torch_threads')}, interleaved rounds ({rounds} per VGG case, {4 * rounds} for the MLP); "
             + _pinned_text(env) + f"load average before {env['loadavg_before']}, after {env['loadavg_after']}.\n",
             markdown_table(["case", "backend", "samples/s", "CPU s/batch", "GFLOP/s", "% of peak", "% of peak (CPU)"],
                            table),
             "\nTESS torch (auto) / before (fuse=none), median over rounds (range):\n",
             markdown_table(["case", "wall", "CPU"],
                            [[k, _cell(rat[k]["torch_over_before"]), _cell(rat_cpu[k]["torch_over_before"])]
                             for k in rows_by])]
    command = provenance(env, sys.argv[1:]).replace("python -m benchmarks ", "python -m benchmarks.throughput ", 1)
    write_markdown(out_dir, "throughput-sweep", "\n".join(lines) + command)
    return payload


def _cell(v: dict[str, float] | None) -> str | None:
    return None if v is None else f"{v['median']:.2f} ({v['min']:.2f}–{v['max']:.2f})"


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.throughput sweep [--rounds N] [--threads N] [--out DIR]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=sweep.__doc__)
    p.add_argument("what", choices=["sweep"])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per VGG case (×4 for the MLP) [5]")
    p.add_argument("--threads", type=int, default=None, help="threads of every framework [their defaults]")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"output folder [{RESULTS_DIR}]")
    args = p.parse_args(argv)
    if args.threads:
        from .__main__ import _pin_threads

        _pin_threads(args.threads)
    if args.threads is None or args.threads > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sweep(args.out, rounds=args.rounds, threads=args.threads, log=lambda s: print(s, flush=True))
    print(f"wrote {args.out / 'throughput-sweep.json'} and {args.out / 'throughput-sweep.md'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
