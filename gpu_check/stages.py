"""The measurement stages of ``make gpu-check``; each runs in its own process.

``python -m gpu_check.stages STAGE --json FILE [--backend NAME] [--budget S] [--dry-run]``
writes one JSON object ``{"status", "reason", "metrics", "rows", "notes"}``:
``status`` is ``ok``, ``skipped`` (with the reason) or ``failed`` (with the
error).  A stage keeps to its own time budget; the orchestrator
(:mod:`gpu_check.runner`) also kills it at a hard timeout.

With ``--dry-run`` (or on a machine without CUDA) the GPU parts are skipped with
a reason and the CPU parts of the logic still run (tiny sizes), so the whole
script is testable on CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

__all__ = ["STAGES", "run_stage", "main", "H200_PEAK_BW", "peak_bandwidth", "event_batch"]

H200_PEAK_BW = 4.8e12
"""NVIDIA's published HBM3e bandwidth of the H200 (bytes/s), used when the device
does not report its memory clock and bus width."""

GPU_BACKENDS = ("cupy", "torch", "jax")


def _result(status: str, reason: str = "", **kw: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, "metrics": kw.get("metrics", {}), "rows": kw.get("rows", []),
            "notes": kw.get("notes", [])}


# -- environment ------------------------------------------------------------------------


def cuda_status(frameworks: tuple[str, ...] = GPU_BACKENDS) -> dict[str, Any]:
    """Which of ``frameworks`` see a CUDA device here (never raises; imports only those)."""
    out: dict[str, Any] = {}
    if "cupy" in frameworks:
        out.update(_cupy_status())
    if "torch" in frameworks:
        out.update(_torch_status())
    if "jax" in frameworks:
        out.update(_jax_status())
    return out


def _cupy_status() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import cupy

        out["cupy"] = cupy.__version__
        try:
            out["cupy_cuda"] = bool(cupy.cuda.is_available())
        except Exception as exc:  # pragma: no cover - broken driver
            out["cupy_cuda"] = False
            out["cupy_error"] = str(exc)
    except Exception as exc:
        out["cupy"] = f"not importable ({exc.__class__.__name__})"
        out["cupy_cuda"] = False
    return out


def _torch_status() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = bool(torch.cuda.is_available())
        if out["torch_cuda"]:
            out["gpu"] = torch.cuda.get_device_name(0)
            out["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except Exception as exc:
        out["torch"] = f"not importable ({exc.__class__.__name__})"
        out["torch_cuda"] = False
    return out


def _jax_status() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        import jax

        out["jax"] = jax.__version__
        try:
            out["jax_cuda"] = len(jax.devices("gpu")) > 0
        except Exception:
            out["jax_cuda"] = False
    except Exception as exc:
        out["jax"] = f"not importable ({exc.__class__.__name__})"
        out["jax_cuda"] = False
    return out


def installed_versions() -> dict[str, Any]:
    """Framework versions from package metadata, without importing anything (dry run)."""
    from importlib import metadata

    out: dict[str, Any] = {}
    for key, dists in (("cupy", ("cupy-cuda13x", "cupy-cuda12x", "cupy")), ("torch", ("torch",)), ("jax", ("jax",))):
        for d in dists:
            try:
                out[key] = metadata.version(d)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            out[key] = "not installed"
        out[f"{key}_cuda"] = "not probed (dry run)"
    return out


def stage_env(args: argparse.Namespace) -> dict[str, Any]:
    """Versions and devices (a dry run reads versions from metadata and probes no device)."""
    st = installed_versions() if args.dry_run else cuda_status()
    metrics = {"python": platform.python_version(), "numpy": np.__version__, **st}
    try:
        import tess

        metrics["tess"] = tess.__version__
        metrics["tess_spec"] = tess.SPEC_VERSION
    except Exception as exc:
        return _result("failed", f"tess is not importable: {exc}", metrics=metrics)
    return _result("ok", metrics=metrics)


# -- workloads ------------------------------------------------------------------------------


def event_batch(T: int, batch: int, shape: tuple[int, ...], n_classes: int, seed: int = 0,
                density: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary event frames ``(batch, T, *shape)`` and labels, from the spec's RNG."""
    from tess_spec import make_rng

    rng = make_rng(seed)
    x = (rng.random((batch, T, *shape)) < density).astype(np.float32)
    y = rng.integers(0, n_classes, batch)
    return x, y


def _vgg9(T: int, width_scale: float = 1.0) -> Any:
    from tess_spec import vgg9

    cfg = vgg9("dvs_gesture", width_scale=width_scale)
    return cfg.replace(**{"train.T": T}) if T != cfg.train.T else cfg


def stage_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """TESS training throughput (samples/s) of one backend on VGG-9, 2×32×32, T=20, batch 16."""
    import tess
    from tess_spec import init_opt_state, init_params, make_rng

    name = args.backend
    if args.dry_run:
        if name != "cupy":
            return _result("skipped", f"dry run: {name} CUDA throughput needs a CUDA device")
        # Exercise the harness on CPU with the CuPy backend's CPU twin (same engine and kernels, the fused ones run
        # by NumPy) on a 1/16-width VGG-9, T=2, batch 2.
        cfg, batch, device = _vgg9(2, 1 / 16), 2, "cpu"
        name, label = "tess.backends.cupy.twin:Backend", "cupy CPU twin (dry run, not a GPU figure)"
    else:
        cfg, batch, device, label = _vgg9(20), 16, "cuda", name
        if not cuda_status((name,)).get(f"{name}_cuda"):
            return _result("skipped", f"{name} sees no CUDA device")
    x, y = event_batch(cfg.train.T, batch, cfg.network.input_shape, cfg.network.n_classes)
    be = tess.get_backend(name, dtype="float32", device=device)
    p_np = init_params(cfg, make_rng(0))
    params, opt = be.params_from_numpy(p_np), be.opt_state_from_numpy(init_opt_state(cfg, p_np))
    t0 = time.perf_counter()
    out = be.train_batch(cfg, params, opt, x, y)  # warm-up: compilation, allocator, autotuning
    warm = time.perf_counter() - t0
    params, opt = out.params, out.opt_state
    times: list[float] = []
    deadline = time.perf_counter() + max(1.0, args.budget * 0.6 - warm)
    max_batches = 3 if args.dry_run else 10
    while len(times) < 2 or (len(times) < max_batches and time.perf_counter() < deadline):
        t0 = time.perf_counter()
        out = be.train_batch(cfg, params, opt, x, y)  # returns host loss: the batch has finished
        times.append(time.perf_counter() - t0)
        params, opt = out.params, out.opt_state
    per_batch = float(np.median(times))
    metrics = {
        "backend": label, "device": device, "batch": batch, "T": cfg.train.T,
        "input": "x".join(map(str, cfg.network.input_shape)), "warmup_s": round(warm, 3),
        "compile_s": None if getattr(be, "compile_seconds", None) is None else round(be.compile_seconds, 3),
        "batches_timed": len(times), "s_per_batch_median": round(per_batch, 4),
        "samples_per_s": round(batch / per_batch, 2), "loss_finite": bool(np.isfinite(out.loss)),
        "info": be.info(),
    }
    return _result("ok", metrics=metrics)


def _partial(args: argparse.Namespace, rows: list[dict[str, Any]], notes: list[str]) -> None:
    """Write what is measured so far, so a stage killed at its budget still reports it."""
    path = getattr(args, "json", None)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(_result("partial", "incomplete", metrics=_memory_metrics(rows), rows=rows, notes=notes),
                      fh, indent=2, default=str)


def _torch_peak(run: Callable[[], None]) -> int:
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def stage_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Peak GPU memory of one training batch, TESS vs BPTT, at T = 20 and T = 100."""
    if args.dry_run:
        return _result("skipped", "dry run: peak GPU memory needs a CUDA device",
                       notes=["would measure: TESS (torch, cupy) and BPTT (torch) at T = 20 and 100"])
    st = cuda_status(("torch", "cupy"))
    if not st.get("torch_cuda"):
        return _result("skipped", "torch sees no CUDA device (torch measures peak allocated memory)")
    import tess
    from tess_spec import init_opt_state, init_params, make_rng

    rows: list[dict[str, Any]] = []
    notes = ["torch: torch.cuda.max_memory_allocated() over one batch after one warm-up batch, "
             "input sequence included (O(T) data, identical for both methods)",
             "cupy: bytes held by CuPy's memory pool after one batch (pool emptied first): its high-water mark"]
    t_start = time.perf_counter()
    for T in (20, 100):
        cfg = _vgg9(T)
        x, y = event_batch(T, 16, cfg.network.input_shape, cfg.network.n_classes)
        p_np = init_params(cfg, make_rng(0))
        be = tess.get_backend("torch", dtype="float32", device="cuda")
        params, opt = be.params_from_numpy(p_np), be.opt_state_from_numpy(init_opt_state(cfg, p_np))
        be.train_batch(cfg, params, opt, x, y)
        peak = _torch_peak(lambda: be.train_batch(cfg, params, opt, x, y))
        rows.append({"method": "TESS", "backend": "torch", "T": T, "peak_bytes": peak})
        _partial(args, rows, notes)
        del be, params, opt
        if st.get("cupy_cuda"):
            import cupy

            pool = cupy.get_default_memory_pool()
            cb = tess.get_backend("cupy", dtype="float32", device="cuda")
            cp, co = cb.params_from_numpy(p_np), cb.opt_state_from_numpy(init_opt_state(cfg, p_np))
            cb.train_batch(cfg, cp, co, x, y)
            pool.free_all_blocks()
            cp, co = cb.params_from_numpy(p_np), cb.opt_state_from_numpy(init_opt_state(cfg, p_np))
            cb.train_batch(cfg, cp, co, x, y)
            cupy.cuda.Device().synchronize()
            rows.append({"method": "TESS", "backend": "cupy", "T": T, "peak_bytes": int(pool.total_bytes())})
            _partial(args, rows, notes)
            del cb, cp, co
            pool.free_all_blocks()
        try:  # the baseline: the torch backend's BPTT method, same kernels, autograd through time
            bb = tess.get_backend("torch", dtype="float32", device="cuda", method="bptt")
            bp_, bo = bb.params_from_numpy(p_np), bb.opt_state_from_numpy(init_opt_state(cfg, p_np))
            bb.train_batch(cfg, bp_, bo, x, y)
            peak = _torch_peak(lambda: bb.train_batch(cfg, bp_, bo, x, y))
            rows.append({"method": "BPTT", "backend": "torch", "T": T, "peak_bytes": peak})
            _partial(args, rows, notes)
            del bb, bp_, bo
        except Exception as exc:
            notes.append(f"BPTT at T={T} failed: {exc.__class__.__name__}: {exc}")
        if time.perf_counter() - t_start > args.budget * 0.8:
            notes.append(f"stopped after T={T}: time budget")
            break
    return _result("ok", metrics=_memory_metrics(rows), rows=rows, notes=notes)


def _memory_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """BPTT/TESS peak ratios per T and T=100/T=20 growth per (method, backend)."""
    metrics: dict[str, Any] = {}
    by = {(r["method"], r["backend"], r["T"]): r["peak_bytes"] for r in rows}
    for T in (20, 100):
        if ("BPTT", "torch", T) in by and ("TESS", "torch", T) in by:
            metrics[f"bptt_over_tess_T{T}"] = round(by[("BPTT", "torch", T)] / by[("TESS", "torch", T)], 2)
    for key in sorted({(m, b) for m, b, _ in by}):
        if (*key, 20) in by and (*key, 100) in by:
            metrics[f"{key[0]}_{key[1]}_T100_over_T20"] = round(by[(*key, 100)] / by[(*key, 20)], 3)
    return metrics


def peak_bandwidth(cupy: Any, device_id: int = 0) -> tuple[float, str]:
    """Theoretical DRAM bandwidth (bytes/s) and where the number came from.

    ``2 × memoryClockRate (kHz → Hz) × memoryBusWidth / 8`` from the device
    attributes (double data rate); if the device does not report them, the
    published figure for an H200 (4.8 TB/s) when the device is one.
    """
    rt = cupy.cuda.runtime
    clock = width = None
    try:
        props = rt.getDeviceProperties(device_id)
        clock, width = props.get("memoryClockRate"), props.get("memoryBusWidth")
    except Exception:
        props = {}
    if not clock or not width:
        try:  # cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37
            clock, width = rt.deviceGetAttribute(36, device_id), rt.deviceGetAttribute(37, device_id)
        except Exception:
            clock = width = None
    if clock and width:
        bw = 2.0 * float(clock) * 1e3 * float(width) / 8.0
        return bw, f"device attributes: 2 × {clock} kHz × {width} bit / 8"
    name = props.get("name", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    if "H200" in name:
        return H200_PEAK_BW, f"published H200 figure (device {name!r} reports no memory clock)"
    raise RuntimeError(f"device {name!r} reports no memory clock/bus width and is not in the table")


def _bandwidth_cases() -> list[tuple[str, int, int]]:
    # (label, n_neurons, n_inputs): VGG-9 block 2 at batch 16 (the largest block), and a large array
    return [("VGG-9 block 2, batch 16 (128×32×32 neurons, 64×32×32 inputs)", 16 * 128 * 32 * 32, 16 * 64 * 32 * 32),
            ("large: 2^26 neurons, 2^25 inputs", 2**26, 2**25)]


def stage_bandwidth(args: argparse.Namespace) -> dict[str, Any]:
    """Achieved DRAM bandwidth of the fused block kernel (training variant with h̃) vs the peak."""
    from tess.backends.cupy import codegen as K

    notes = ["kernel: LIF + spike + ψ + h + h̃ over neurons and q over inputs, one launch; bytes = every "
             "array element read once and written once (tess.backends.cupy.codegen.bytes_moved)"]
    rows: list[dict[str, Any]] = []
    st = {} if args.dry_run else cuda_status(("cupy",))
    for dtype in ("float32", "float64"):
        spec = K.StepSpec(dtype, "soft", "triangle", "paper", traces=True, noncausal=True)
        prog = K.neuron_step_program(spec)
        for label, n, n_in in _bandwidth_cases():
            rows.append({"dtype": dtype, "case": label, "kernel": prog.name,
                         "bytes": K.bytes_moved(prog, dtype, {"n_neurons": n, "n_inputs": n_in})})
    if args.dry_run or not st.get("cupy_cuda"):
        # Exercise the timing harness on the NumPy twin at a small size.
        prog = K.neuron_step_program(K.StepSpec("float32", noncausal=True))
        n, n_in = 4096, 2048
        arrays = {a: np.zeros(n_in if a in ("q", "x") else n, np.float32) for a in prog.array_names}
        params = {"leak": 0.5, "theta": 0.6, "amount": 0.6, "lambda_post": 0.2, "lambda_pre": 0.5}
        t0 = time.perf_counter()
        K.evaluate(prog, "float32", arrays, params, {"n_neurons": n, "n_inputs": n_in})
        dt = time.perf_counter() - t0
        notes.append(f"CPU twin ran the kernel table once ({n} neurons) in {dt * 1e3:.2f} ms — not a GPU figure")
        reason = "dry run" if args.dry_run else "cupy sees no CUDA device"
        return _result("skipped", f"{reason}: kernel timing needs a CUDA device", rows=rows, notes=notes)
    import cupy

    from tess.backends.cupy.backend import CupyRunner

    peak, source = peak_bandwidth(cupy)
    runner = CupyRunner(cupy, 0)
    best = 0.0
    for row in rows:
        dtype = row["dtype"]
        n, n_in = next((c[1], c[2]) for c in _bandwidth_cases() if c[0] == row["case"])
        prog = K.neuron_step_program(K.StepSpec(dtype, "soft", "triangle", "paper", traces=True, noncausal=True))
        rng = cupy.random.default_rng(0)
        arrays = {a: (rng.random(n_in if a in ("q", "x") else n, dtype=dtype)) for a in prog.array_names}
        params = {"leak": 0.5, "theta": 0.6, "amount": 0.6, "lambda_post": 0.2, "lambda_pre": 0.5}
        lengths = {"n_neurons": n, "n_inputs": n_in}
        for _ in range(3):
            runner(prog, dtype, arrays, params, lengths)
        reps = 20
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(reps):
            runner(prog, dtype, arrays, params, lengths)
        end.record()
        end.synchronize()
        ms = cupy.cuda.get_elapsed_time(start, end) / reps
        bw = row["bytes"] / (ms * 1e-3)
        row.update(ms=round(ms, 4), gbps=round(bw / 1e9, 1), fraction_of_peak=round(bw / peak, 3))
        best = max(best, bw / peak)
        del arrays
    notes.append(f"peak {peak / 1e12:.2f} TB/s from {source}")
    notes.append("ms per launch = cupy event time over 20 back-to-back launches after 3 warm-up launches "
                 "(includes the host launch cost of CupyRunner, argument checks included)")
    return _result("ok", metrics={"peak_bytes_per_s": peak, "peak_source": source,
                                  "best_fraction_of_peak": round(best, 3)}, rows=rows, notes=notes)


def _step_setting(dry_run: bool) -> tuple[Any, int, int, str]:
    """(config, block index, batch, device) of the torch-step stage: VGG-9's block 2 (128×32×32
    neurons, 64×32×32 inputs) at batch 16 on CUDA; a 1/16-width VGG-9 at batch 2 on the CPU (dry run)."""
    if dry_run:
        return _vgg9(2, 1 / 16), 1, 2, "cpu"
    return _vgg9(20), 1, 16, "cuda"


def stage_torch_step(args: argparse.Namespace) -> dict[str, Any]:
    """The torch backend's neuron step on CUDA — ``fuse="none"`` (the engine's composition),
    ``"eager"`` and ``"compile"`` (Triton) — against the CuPy backend's fused kernel, on VGG-9's
    block 2 at batch 16 (float32, training step with h̃): µs per block step and the effective
    bandwidth (the kernel's minimum traffic, :func:`tess.backends.cupy.codegen.bytes_moved`,
    over the time).  A dry run times the CPU variants (``none``, ``eager``, ``cpp``) and the
    CuPy CPU twin at a tiny size: the harness, not a GPU figure."""
    import tess
    from tess.backends.cupy import codegen
    from tess.engine import BlockState
    from tess_spec.plan import network_plan

    st = {} if args.dry_run else cuda_status(("torch", "cupy"))
    if not args.dry_run and not st.get("torch_cuda"):
        return _result("skipped", "torch sees no CUDA device")
    import torch

    cfg, index, batch, device = _step_setting(args.dry_run)
    plan = network_plan(cfg)
    bp = plan.blocks[index]
    neurons, inputs = (batch, *bp.neurons), (batch, *bp.input)
    prog = codegen.neuron_step_program(codegen.StepSpec("float32", plan.lif.reset, bp.psi, plan.profile, traces=True,
                                                         noncausal=True))
    n_bytes = codegen.bytes_moved(prog, "float32", {"n_neurons": math.prod(neurons), "n_inputs": math.prod(inputs)})
    reps = 3 if args.dry_run else 20
    notes = [f"block {index + 1} of VGG-9 ({'x'.join(map(str, bp.neurons))} neurons, {'x'.join(map(str, bp.input))} "
             f"inputs) at batch {batch}, float32, LIF + spike + psi + h + h~ + q; bytes = the minimum traffic "
             f"({n_bytes / 1e6:.1f} MB: every array read once, every output written once), the same for every row",
             f"time = the mean of {reps} back-to-back steps after 3 warm-up steps (compilation included in the "
             "warm-up), host launch cost included"]
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        path = getattr(args, "json", None)
        if path:  # partial results survive a kill at the budget
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(_result("partial", "incomplete", rows=rows, notes=notes), fh, indent=2, default=str)

    gen = torch.Generator().manual_seed(0)
    cur_h = (torch.rand(neurons, generator=gen) * 1.2).numpy()
    x_h = (torch.rand(inputs, generator=gen) < 0.1).float().numpy()
    fuses = ("none", "eager", "cpp") if args.dry_run else ("none", "eager", "compile")
    for fuse in fuses:
        if time.perf_counter() - t_start > args.budget * 0.75:
            notes.append(f"stopped before fuse={fuse}: time budget")
            break
        try:
            be = tess.get_backend("torch", dtype="float32", device=device, fuse=fuse)
        except Exception as exc:
            add({"impl": f"torch fuse={fuse}", "device": device, "error": f"{type(exc).__name__}: {exc}"})
            continue
        K, dev = be.kernels, torch.device(device)
        cur = K.to_layout(torch.as_tensor(cur_h, device=dev)) if fuse != "none" else torch.as_tensor(cur_h, device=dev)
        x = torch.as_tensor(x_h, device=dev)
        s = BlockState(*(K.zeros(neurons) for _ in range(2)), K.zeros(inputs), K.zeros(neurons))

        def step() -> None:
            nonlocal s
            with torch.no_grad():
                s = K.neuron_step(plan, bp, s, cur, x, None, noncausal=True).state

        try:
            t0 = time.perf_counter()
            for _ in range(3):
                step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            warm = time.perf_counter() - t0
            if dev.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    step()
                end.record()
                end.synchronize()
                us = start.elapsed_time(end) * 1e3 / reps
            else:
                t0 = time.perf_counter()
                for _ in range(reps):
                    step()
                us = (time.perf_counter() - t0) * 1e6 / reps
        except Exception as exc:  # e.g. Triton missing or failing to compile: reported, the others still run
            add({"impl": f"torch fuse={fuse}", "device": device, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        add({"impl": f"torch fuse={fuse}", "device": device, "us_per_step": round(us, 1),
             "gbps": round(n_bytes / (us * 1e-6) / 1e9, 1), "warmup_s": round(warm, 3),
             "compile_s": None if be.compile_seconds is None else round(be.compile_seconds, 3)})
    cupy_name = "tess.backends.cupy.twin:Backend" if args.dry_run else "cupy"
    if args.dry_run or st.get("cupy_cuda"):
        try:
            cb = tess.get_backend(cupy_name, dtype="float32", device=device)
            CK = cb.kernels
            xp = CK.xp
            cur_c = xp.ascontiguousarray(xp.asarray(cur_h).transpose(0, 2, 3, 1))
            x_c = xp.ascontiguousarray(xp.asarray(x_h).transpose(0, 2, 3, 1))
            ln, li = (batch, *CK.layout_shape(bp.neurons)), (batch, *CK.layout_shape(bp.input))
            cs = BlockState(CK.zeros(ln), CK.zeros(ln), CK.zeros(li), CK.zeros(ln))
            for _ in range(3):
                cs = CK.neuron_step(plan, bp, cs, cur_c, x_c, None, noncausal=True).state
            if args.dry_run:
                t0 = time.perf_counter()
                for _ in range(reps):
                    cs = CK.neuron_step(plan, bp, cs, cur_c, x_c, None, noncausal=True).state
                us = (time.perf_counter() - t0) * 1e6 / reps
            else:
                import cupy

                start, end = cupy.cuda.Event(), cupy.cuda.Event()
                start.record()
                for _ in range(reps):
                    cs = CK.neuron_step(plan, bp, cs, cur_c, x_c, None, noncausal=True).state
                end.record()
                end.synchronize()
                us = cupy.cuda.get_elapsed_time(start, end) * 1e3 / reps
            add({"impl": "cupy CPU twin (dry run)" if args.dry_run else "cupy (generated kernel)", "device": device,
                 "us_per_step": round(us, 1), "gbps": round(n_bytes / (us * 1e-6) / 1e9, 1)})
        except Exception as exc:
            add({"impl": "cupy", "device": device, "error": f"{type(exc).__name__}: {exc}"[:300]})
    else:
        notes.append("cupy sees no CUDA device: no CuPy row")
    timed = {r["impl"]: r["us_per_step"] for r in rows if "us_per_step" in r}
    metrics: dict[str, Any] = {"bytes": n_bytes}
    torch_best = min((v, k) for k, v in timed.items() if k.startswith("torch") and k != "torch fuse=none") \
        if any(k.startswith("torch") and k != "torch fuse=none" for k in timed) else None
    if torch_best:
        metrics["torch_best"] = torch_best[1]
        if "torch fuse=none" in timed:
            metrics["speedup_over_unfused"] = round(timed["torch fuse=none"] / torch_best[0], 2)
        cupy_us = next((v for k, v in timed.items() if k.startswith("cupy")), None)
        if cupy_us:
            metrics["torch_best_over_cupy_time"] = round(torch_best[0] / cupy_us, 2)
    if args.dry_run:
        return _result("skipped", "dry run: the torch CUDA step needs a CUDA device (CPU variants timed instead)",
                       metrics=metrics, rows=rows, notes=notes)
    return _result("ok", metrics=metrics, rows=rows, notes=notes)


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "env": stage_env,
    "throughput": stage_throughput,
    "memory": stage_memory,
    "bandwidth": stage_bandwidth,
    "step": stage_torch_step,
}
"""Stage name → function (each returns the JSON-able result dict)."""


def run_stage(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage; an exception becomes a ``failed`` result with its traceback tail."""
    t0 = time.perf_counter()
    try:
        res = STAGES[name](args)
    except Exception as exc:
        tb = traceback.format_exc().strip().splitlines()
        res = _result("failed", f"{exc.__class__.__name__}: {exc}", notes=tb[-6:])
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


def main(argv: list[str] | None = None) -> int:
    """CLI of one stage (used by :mod:`gpu_check.runner`)."""
    ap = argparse.ArgumentParser(prog="python -m gpu_check.stages")
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--json", required=True, help="where to write the result")
    ap.add_argument("--backend", default="cupy", choices=GPU_BACKENDS)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds this stage may take")
    ap.add_argument("--dry-run", action="store_true", help="skip GPU parts, run CPU parts tiny")
    args = ap.parse_args(argv)
    res = run_stage(args.stage, args)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
