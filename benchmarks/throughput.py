"""Throughput: training samples per second of TESS on every backend that runs here
(the built-in ones of ``tess.list_backends()``, skipping those that raise
:class:`~tess.errors.BackendUnavailableError`; registered third-party backends are listed, not timed) and of BPTT (torch autograd), on the
same network and data: the reduced VGG (T = 20, batch 16) and the digits MLP
(T = 6, batch 32).

The first batch (warm-up: lazy initialisation, JIT compilation) is timed and
reported separately; a backend's ``compile_seconds`` attribute, when it has one,
is reported too.  Steady state = mean over the following batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS_DIR, VGG_WIDTH, batch_data, environment, markdown_table, network_config, write_json, write_markdown

NETS = {"vgg": 20, "mlp": 6}  # net → T


def _time_batches(step, n: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return first, times


def measure_tess(name: str, config, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
    """Time ``n`` TESS batches (after one warm-up batch) on backend ``name``."""
    import tess
    from tess.errors import TessError
    from tess_spec import init_opt_state, init_params, make_rng

    try:
        backend = tess.get_backend(name, dtype="float32")
    except TessError as exc:
        return {"method": "tess", "backend": name, "skipped": f"{type(exc).__name__}: {exc}"}
    np_params = {k: v.astype(np.float32) for k, v in init_params(config, make_rng(0)).items()}
    state = {"p": backend.params_from_numpy(np_params),
             "o": backend.opt_state_from_numpy(init_opt_state(config, np_params))}

    def step() -> None:
        out = backend.train_batch(config, state["p"], state["o"], x, y)
        state["p"], state["o"] = out.params, out.opt_state

    first, times = _time_batches(step, n)
    return _row("tess", backend.name, backend.info().get("device", ""), x.shape[0], first, times,
                getattr(backend, "compile_seconds", None))


def measure_bptt(config, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
    """Time ``n`` BPTT batches (after one warm-up batch) with torch autograd."""
    from tess.bptt import BPTTModel

    model = BPTTModel(config, dtype="float32")
    first, times = _time_batches(lambda: model.train_batch(x, y), n)
    return _row("bptt", "torch (autograd)", str(model.device), x.shape[0], first, times, None)


def _row(method: str, backend: str, device: str, batch: int, first: float, times: list[float],
         compile_s: float | None) -> dict[str, Any]:
    steady = float(np.mean(times))
    return {"method": method, "backend": backend, "device": device, "batch": batch,
            "first_batch_s": first, "compile_s": compile_s, "steady_batch_s": steady,
            "samples_per_s": batch / steady, "n_batches": len(times)}


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log=print) -> dict[str, Any]:
    """Measure every backend and BPTT on both networks; write ``throughput.json`` / ``.md``."""
    import tess
    from tess.registry import BUILTINS

    if threads:
        import torch

        torch.set_num_threads(threads)
    width = VGG_WIDTH / 2 if quick else VGG_WIDTH
    results: dict[str, list[dict[str, Any]]] = {}
    for net, T in NETS.items():
        config = network_config(net, T, width)
        x, y = batch_data(config)
        n = (1 if quick else 3) if net == "vgg" else (2 if quick else 20)
        rows = [measure_tess(name, config, x, y, n) if name in BUILTINS else
                {"method": "tess", "backend": name, "skipped": "third-party backend (only built-in ones are compared)"}
                for name in tess.list_backends()]
        rows.append(measure_bptt(config, x, y, n))
        for r in rows:
            log(f"throughput {net:4s} {r['method']:5s} {r['backend']:18s}: "
                + (f"skipped ({r['skipped']})" if "skipped" in r else
                   f"{r['samples_per_s']:8.1f} samples/s (first batch {r['first_batch_s']:.2f}s)"))
        results[net] = rows
    ratios = {}
    for net, rows in results.items():
        sps = {(r["method"], r["backend"]): r.get("samples_per_s") for r in rows}
        torch_s, numpy_s = sps.get(("tess", "torch")), sps.get(("tess", "numpy"))
        bptt_s = sps.get(("bptt", "torch (autograd)"))
        ratios[net] = {"torch_over_numpy": torch_s / numpy_s if torch_s and numpy_s else None,
                       "tess_torch_over_bptt": torch_s / bptt_s if torch_s and bptt_s else None}
    payload = {"benchmark": "throughput", "quick": quick, "width_scale": width, "T": NETS,
               "environment": environment(threads), "results": results, "ratios": ratios}
    write_json(out_dir, "throughput", payload)
    lines = [f"Training throughput (float32, {device}, torch threads = {payload['environment'].get('torch_threads')}). "
             f"`vgg`: VGG-9 width × {width}, 2×32×32 event frames, T = 20, batch 16; `mlp`: digits MLP, T = 6, "
             "batch 32. First batch (warm-up/compile) reported separately from the steady state.\n"]
    table = []
    for net, rows in results.items():
        for r in rows:
            if "skipped" in r:
                table.append([net, r["method"], r["backend"], None, None, None, "skipped: " + r["skipped"][:80]])
            else:
                table.append([net, r["method"], r["backend"], r["samples_per_s"], r["steady_batch_s"],
                              r["first_batch_s"], "" if r["compile_s"] is None else f"compile {r['compile_s']:.2f}s"])
    lines.append(markdown_table(["net", "method", "backend", "samples/s", "s/batch", "first batch (s)", "note"], table))
    lines.append("\n" + markdown_table(["net", "torch / numpy (TESS)", "TESS torch / BPTT"],
                                       [[n, r["torch_over_numpy"], r["tess_torch_over_bptt"]] for n, r in ratios.items()]))
    write_markdown(out_dir, "throughput", "\n".join(lines), payload["environment"])
    return payload
