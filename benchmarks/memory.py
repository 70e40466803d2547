"""Memory vs T: peak memory of training ONE mini-batch (forward over T steps plus all
updates) for TESS (torch backend) and BPTT, on the reduced VGG and the digits MLP.

Each configuration runs in a fresh process (``python -m benchmarks.memory worker
'{json}'``) so that no allocator cache or earlier graph is counted.  The worker
builds the config, parameters, optimiser state and the input batch (the input
sequence is O(T) *data*, allocated before the baseline and not counted), then
measures:

* CPU: the peak resident set during the batch minus the resident set before it
  (``VmHWM`` after ``echo 5 > /proc/self/clear_refs``, minus ``VmRSS``);
* CUDA: ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before.

Next to it, the bytes the spec says TESS needs: per-block state u/o/q/h
(:func:`tess_spec.state_nbytes`) + parameters + two Adam moments.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR, VGG_WIDTH, batch_data, environment, markdown_table, mib, network_config, write_json, write_markdown

T_VALUES = (5, 10, 20, 50, 100)
QUICK_T_VALUES = (5, 20)


def spec_bytes(config, batch: int, itemsize: int = 4) -> dict[str, int]:
    """What TESS must hold, by the spec: state (u, o, q, h), parameters and Adam's two moments."""
    from tess_spec import param_shapes, state_nbytes

    n_params = sum(int(__import__("numpy").prod(s)) for s in param_shapes(config).values())
    state = state_nbytes(config.network, batch, itemsize)
    return {"state": state, "params": n_params * itemsize, "adam": 2 * n_params * itemsize,
            "total": state + 3 * n_params * itemsize}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration in this (fresh) process; returns the result dict."""
    import numpy as np
    import torch

    from tess.backends.torch import current_memory, peak_memory, reset_peak_memory, torch_device

    torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
    device = torch_device(spec.get("device", "cpu"))
    config = network_config(spec["net"], spec["T"], spec.get("width", VGG_WIDTH))
    x, y = batch_data(config)
    if spec["method"] == "tess":
        import tess
        from tess_spec import init_opt_state, init_params, make_rng

        backend = tess.get_backend("torch", device=str(device))
        np_params = {k: v.astype(np.float32) for k, v in init_params(config, make_rng(0)).items()}
        params = backend.params_from_numpy(np_params)
        opt = backend.opt_state_from_numpy(init_opt_state(config, np_params))
        run = lambda: backend.train_batch(config, params, opt, x, y)  # noqa: E731
    else:
        from tess.bptt import BPTTModel

        model = BPTTModel(config, device=str(device))
        run = lambda: model.train_batch(x, y)  # noqa: E731
    gc.collect()
    base = current_memory(device)
    reset_peak_memory(device)
    out = run()
    peak = peak_memory(device)
    del out
    return {**spec, "device": str(device), "batch": int(x.shape[0]), "input_bytes": int(x.nbytes),
            "baseline_bytes": base, "peak_bytes": peak, "delta_bytes": peak - base,
            "spec_bytes": spec_bytes(config, int(x.shape[0]))}


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    # glibc's dynamic mmap threshold would keep freed large buffers in the heap; pinning it
    # returns them to the OS at once, so the peak RSS reflects live memory (same for both methods).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", "worker", json.dumps(spec)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=env)
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(out_dir: Path = RESULTS_DIR, *, quick: bool = False, threads: int | None = None,
        device: str = "cpu", log=print) -> dict[str, Any]:
    """Run every configuration (each in a fresh process) and write ``memory.json`` / ``memory.md``."""
    Ts = QUICK_T_VALUES if quick else T_VALUES
    width = VGG_WIDTH / 2 if quick else VGG_WIDTH
    rows = []
    for net in ("vgg", "mlp"):
        for method in ("tess", "bptt"):
            for T in Ts:
                r = _spawn({"net": net, "method": method, "T": T, "width": width, "threads": threads, "device": device})
                rows.append(r)
                log(f"memory {net:4s} {method:5s} T={T:3d}: "
                    + (r["error"] if "error" in r else f"peak delta {mib(r['delta_bytes']):9.1f} MiB"))
    summary = _summarise(rows, Ts)
    payload = {"benchmark": "memory", "quick": quick, "width_scale": width, "T": list(Ts),
               "environment": environment(threads), "rows": rows, "summary": summary}
    write_json(out_dir, "memory", payload)
    write_markdown(out_dir, "memory", _markdown(rows, summary, width, device), payload["environment"])
    return payload


def _summarise(rows: list[dict[str, Any]], Ts) -> dict[str, Any]:
    by = {(r["net"], r["method"], r["T"]): r.get("delta_bytes") for r in rows}
    out: dict[str, Any] = {}
    lo, hi = Ts[0], Ts[-1]
    for net in ("vgg", "mlp"):
        t_lo, t_hi = by.get((net, "tess", lo)), by.get((net, "tess", hi))
        b_lo, b_hi = by.get((net, "bptt", lo)), by.get((net, "bptt", hi))
        out[net] = {
            f"tess_T{hi}_over_T{lo}": t_hi / t_lo if t_lo and t_hi else None,
            f"bptt_T{hi}_over_T{lo}": b_hi / b_lo if b_lo and b_hi else None,
            f"bptt_over_tess_T{hi}": b_hi / t_hi if b_hi and t_hi else None,
        }
    return out


def _markdown(rows: list[dict[str, Any]], summary: dict[str, Any], width: float, device: str) -> str:
    text = [f"Peak memory of training one mini-batch ({device}; CPU: peak RSS delta, CUDA: "
            "max_memory_allocated delta), each configuration in a fresh process. "
            f"`vgg` = VGG-9 (DVS Gesture settings) with width × {width}, 2×32×32 event frames, batch 16; "
            "`mlp` = digits MLP 64-256-256, batch 32, direct input. "
            "Spec bytes = TESS state (u, o, q, h) + parameters + Adam moments (float32). "
            "The input sequence (O(T) data) is allocated before the measurement and listed separately. "
            "Workers run with glibc's mmap threshold pinned at 128 KiB so freed buffers leave the RSS.\n"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["net"], r["method"], r["T"], "error", None, None, r["error"]])
            continue
        table.append([r["net"], r["method"], r["T"], mib(r["delta_bytes"]),
                      mib(r["spec_bytes"]["total"]) if r["method"] == "tess" else None,
                      mib(r["input_bytes"]), ""])
    text.append(markdown_table(["net", "method", "T", "peak Δ (MiB)", "spec TESS bytes (MiB)", "input (MiB)", "note"],
                               table))
    text.append("\n" + markdown_table(["net", "ratio", "value"],
                                      [[net, k, v] for net, d in summary.items() for k, v in d.items()]))
    return "\n".join(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        print(json.dumps(worker(json.loads(sys.argv[2]))))
    else:  # pragma: no cover
        sys.exit("usage: python -m benchmarks.memory worker '{json}'  (or: python -m benchmarks memory)")
