"""Markdown rendering of the gpu-check results (a pure function of ``results.json``)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = ["render_report", "verdicts"]

_MARK = {"ok": "ok", "skipped": "skipped", "failed": "FAILED", "timeout": "TIMED OUT"}


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |")
    return out


def _status(res: dict[str, Any] | None) -> str:
    if res is None:
        return "not run"
    s = _MARK.get(res.get("status", "?"), res.get("status", "?"))
    return f"{s} ({res['reason']})" if res.get("reason") else s


def verdicts(results: dict[str, Any]) -> list[list[str]]:
    """The issue's acceptance checks as ``[check, verdict, figures]`` rows.

    A verdict is PASS / FAIL only when its measurement exists, else "not measured"
    with the stage's status.
    """
    st = results.get("stages", {})
    rows: list[list[str]] = []
    for b in ("cupy", "torch", "jax"):
        r = st.get(f"conformance-{b}")
        verdict = {"ok": "PASS", "failed": "FAIL", "timeout": "FAIL (timeout)"}.get((r or {}).get("status", ""),
                                                                                 "not measured")
        rows.append([f"conformance suite, {b} on CUDA (profile ci)", verdict, _status(r)])
    bw = st.get("bandwidth", {})
    frac = bw.get("metrics", {}).get("best_fraction_of_peak") if bw.get("status") == "ok" else None
    rows.append(["fused block kernel reaches ≥ 50 % of peak DRAM bandwidth",
                 "not measured" if frac is None else ("PASS" if frac >= 0.5 else "FAIL"),
                 _status(bw) if frac is None else f"{frac:.1%} of {bw['metrics']['peak_bytes_per_s'] / 1e12:.2f} TB/s"])
    tc, tt = st.get("throughput-cupy", {}), st.get("throughput-torch", {})
    if tc.get("status") == "ok" and tt.get("status") == "ok" and not results.get("dry_run"):
        a, b = tc["metrics"]["samples_per_s"], tt["metrics"]["samples_per_s"]
        rows.append(["cupy TESS throughput ≥ torch CUDA (VGG-9, T=20, batch 16)", "PASS" if a >= b else "FAIL",
                     f"cupy {a} vs torch {b} samples/s (ratio {a / b:.2f})"])
    else:
        rows.append(["cupy TESS throughput ≥ torch CUDA (VGG-9, T=20, batch 16)", "not measured",
                     f"cupy: {_status(tc or None)}; torch: {_status(tt or None)}"])
    ts = st.get("step-torch", {})
    tm = ts.get("metrics", {}) if ts.get("status") == "ok" else {}
    if tm.get("torch_best_over_cupy_time") is not None:
        rows.append(["torch fused neuron step on CUDA vs the CuPy kernel (VGG-9 block 2, batch 16)", "measured",
                     f"{tm['torch_best']}: {tm['torch_best_over_cupy_time']}× the CuPy kernel's time, "
                     f"{tm.get('speedup_over_unfused', '—')}× faster than fuse=none"])
    else:
        rows.append(["torch fused neuron step on CUDA vs the CuPy kernel (VGG-9 block 2, batch 16)", "not measured",
                     _status(ts or None)])
    mem = st.get("memory", {})
    m = mem.get("metrics", {}) if mem.get("status") == "ok" else {}
    if m:
        figs = ", ".join(f"{k} = {v}" for k, v in sorted(m.items()))
        rows.append(["peak memory: TESS flat in T, BPTT grows (T = 20 → 100)", "measured", figs])
    else:
        rows.append(["peak memory: TESS flat in T, BPTT grows (T = 20 → 100)", "not measured", _status(mem or None)])
    return rows


def _tail(res: dict[str, Any]) -> list[str]:
    tail = res.get("output_tail")
    if not tail:
        return []
    return ["", "```text", tail.rstrip().replace("```", "'''"), "```"]


def render_report(results: dict[str, Any], now: _dt.datetime | None = None) -> str:
    """The Markdown report of one gpu-check run."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    st = results.get("stages", {})
    lines = ["# GPU check report", ""]
    mode = " — DRY RUN (CPU mode: GPU parts skipped)" if results.get("dry_run") else ""
    lines.append(f"Generated {now:%Y-%m-%d %H:%M} UTC by `make gpu-check` (`python -m gpu_check`) "
                 f"in {results.get('total_s', '?')} s{mode}.")
    lines += ["", "## Summary", ""]
    lines += _table(["check", "verdict", "figures / status"], verdicts(results))

    env = st.get("env", {})
    lines += ["", "## Environment", ""]
    if env.get("metrics"):
        lines += _table(["item", "value"], [[k, v] for k, v in env["metrics"].items()])
    else:
        lines.append(f"Environment stage: {_status(env or None)}")

    lines += ["", "## Conformance", ""]
    for b in ("cupy", "torch", "jax"):
        r = st.get(f"conformance-{b}")
        lines.append(f"- **{b}**: {_status(r)}" + (f" — `{r['command']}`" if r and r.get("command") else "")
                     + (f" — full report: `{r['report_file']}`" if r and r.get("report_file") else ""))
    for b in ("cupy", "torch", "jax"):
        r = st.get(f"conformance-{b}") or {}
        if r.get("output_tail") and r.get("status") != "skipped":
            lines += ["", f"Output tail, {b}:"] + _tail(r)

    lines += ["", "## Training throughput (TESS, VGG-9, DVS-Gesture input 2×32×32, T = 20, batch 16)", ""]
    rows = []
    for b in ("cupy", "torch", "jax"):
        r = st.get(f"throughput-{b}") or {}
        m = r.get("metrics", {})
        if r.get("status") == "ok":
            rows.append([m.get("backend", b), m.get("samples_per_s"), m.get("s_per_batch_median"),
                         m.get("warmup_s"), "—" if m.get("compile_s") is None else m.get("compile_s"),
                         m.get("batches_timed"), f"T={m.get('T')}, batch {m.get('batch')}"])
        else:
            rows.append([b, "—", "—", "—", "—", "—", _status(r or None)])
    lines += _table(["backend", "samples/s", "s/batch (median)", "warm-up s", "of which compile s", "batches",
                     "setting / status"], rows)
    lines += ["", "Each timed batch returns the loss to the host, so its wall time covers the finished GPU work."]

    mem = st.get("memory") or {}
    lines += ["", "## Peak GPU memory, TESS vs BPTT", ""]
    if mem.get("rows"):
        lines += _table(["method", "backend", "T", "peak MiB"],
                        [[r["method"], r["backend"], r["T"], f"{r['peak_bytes'] / 2**20:.1f}"] for r in mem["rows"]])
    else:
        lines.append(f"Memory stage: {_status(mem or None)}")
    lines += [f"- {n}" for n in mem.get("notes", [])]
    if mem.get("metrics"):
        lines += [f"- {k}: {v}" for k, v in sorted(mem["metrics"].items())]

    bw = st.get("bandwidth") or {}
    lines += ["", "## Fused block kernel: achieved memory bandwidth", ""]
    if bw.get("rows"):
        lines += _table(["dtype", "case", "kernel", "MB moved", "ms", "GB/s", "of peak"],
                        [[r["dtype"], r["case"], f"`{r['kernel']}`", f"{r['bytes'] / 1e6:.1f}", r.get("ms", "—"),
                          r.get("gbps", "—"), f"{r['fraction_of_peak']:.1%}" if "fraction_of_peak" in r else "—"]
                         for r in bw["rows"]])
    lines.append("")
    lines.append(f"Bandwidth stage: {_status(bw or None)}")
    lines += [f"- {n}" for n in bw.get("notes", [])]

    ts = st.get("step-torch") or {}
    lines += ["", "## Fused neuron step: torch on CUDA vs the CuPy kernel", ""]
    if ts.get("rows"):
        lines += _table(["implementation", "device", "µs per step", "effective GB/s", "warm-up s", "compile s"],
                        [[r["impl"], r["device"], r.get("us_per_step", "—"), r.get("gbps", "—"),
                          r.get("warmup_s", "—"), "—" if r.get("compile_s") is None else r["compile_s"]]
                         if "error" not in r else [r["impl"], r["device"], "error: " + r["error"], "—", "—", "—"]
                         for r in ts["rows"]])
        lines.append("")
    lines.append(f"Step stage: {_status(ts or None)}")
    lines += [f"- {n}" for n in ts.get("notes", [])]

    lines += ["", "## Stages", ""]
    lines += _table(["stage", "status", "seconds"],
                    [[name, _status(r), r.get("seconds", "—")] for name, r in st.items()])
    for name, r in st.items():
        if r.get("status") in ("failed", "timeout") and not name.startswith("conformance-"):
            lines += ["", f"Output tail, {name}:"] + (_tail(r) or [f"    {n}" for n in r.get("notes", [])])
    return "\n".join(lines) + "\n"
