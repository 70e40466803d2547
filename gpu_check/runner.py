"""Orchestrator of ``make gpu-check``: run every stage time-boxed, write the report.

Stages, in order (each in its own process, so a crash, a hang or a device error
in one cannot take the others down, and each starts with a clean GPU)::

    env                       versions, devices
    conformance-{cupy,torch,jax}   python -m tess.conformance --backend B --device cuda --profile ci
    throughput-{cupy,torch,jax}    TESS training samples/s, VGG-9, 2×32×32, T=20, batch 16
    memory                    peak GPU memory, TESS vs BPTT, T = 20 and 100
    bandwidth                 the fused block kernel's achieved DRAM bandwidth vs the device peak
    step-torch                the torch backend's neuron step on CUDA (fuse none/eager/compile) vs the CuPy kernel

Every stage has a budget; the orchestrator kills it at its budget and records
a timeout, and never starts a stage past the global deadline, so the whole run
ends within ``--deadline`` seconds (default 460, under 8 minutes).  The report
(``report.md``), the raw results (``results.json``) and per-stage logs go to
``--out`` (default: ``$OUT`` or ``./gpu-report``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report import render_report

__all__ = ["Stage", "plan_stages", "run", "main", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The source checkout the script runs from (put on PYTHONPATH for every stage)."""


@dataclass(frozen=True)
class Stage:
    """One time-boxed step: a name, a command (argv) and a budget in seconds."""

    name: str
    argv: tuple[str, ...]
    budget: float
    needs: str | None = None  # key of the env stage's metrics that must be true to run
    kind: str = "stage"  # "stage" writes JSON; "command" is judged by its exit code


def plan_stages(out: Path, python: str, dry_run: bool, scale: float = 1.0) -> list[Stage]:
    """The stages to run, with budgets multiplied by ``scale``."""
    def stage(name: str, budget: float, *extra: str, needs: str | None = None) -> Stage:
        argv = (python, "-m", "gpu_check.stages", name.split("-")[0], "--json", str(out / "stages" / f"{name}.json"),
                "--budget", str(round(budget * scale, 1)), *extra, *(("--dry-run",) if dry_run else ()))
        return Stage(name, argv, budget * scale, needs)

    stages = [stage("env", 25)]
    for b, budget in (("cupy", 65), ("torch", 65), ("jax", 65)):
        argv = (python, "-m", "tess.conformance", "--backend", b, "--device", "cuda", "--profile", "ci",
                "--report", str(out / f"conformance-{b}.md"))
        stages.append(Stage(f"conformance-{b}", argv, budget * scale, needs=f"{b}_cuda", kind="command"))
    for b, budget in (("cupy", 40), ("torch", 40), ("jax", 55)):
        stages.append(stage(f"throughput-{b}", budget, "--backend", b))
    stages.append(stage("memory", 50))
    stages.append(stage("bandwidth", 15))
    stages.append(stage("step-torch", 30))
    return stages


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # jax must not grab the whole GPU
    return env


def _run_one(st: Stage, budget: float, log: Path, repo: Path) -> tuple[int | None, float, str]:
    """Run a stage's command with a hard timeout; (exit code or None on timeout, seconds, output tail)."""
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(st.argv, cwd=repo, env=_env(repo), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=max(1.0, budget))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)  # the stage's whole process group (it may have children)
            except ProcessLookupError:  # pragma: no cover
                pass
            proc.wait()
            rc = None
    text = log.read_text(encoding="utf-8", errors="replace")
    return rc, time.perf_counter() - t0, text[-3000:]


def run(out: Path, *, dry_run: bool = False, deadline: float = 460.0, scale: float = 1.0,
        python: str | None = None, only: list[str] | None = None, repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Run the stages and write ``report.md`` and ``results.json`` into ``out``; return the results."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    python = python or sys.executable
    t_start = time.perf_counter()
    results: dict[str, Any] = {"dry_run": dry_run, "deadline_s": deadline, "stages": {}}
    env_metrics: dict[str, Any] = {}
    for st in plan_stages(out, python, dry_run, scale):
        if only and st.name not in only and st.name != "env":
            continue
        left = deadline - (time.perf_counter() - t_start) - 5.0
        res: dict[str, Any]
        if st.kind == "command" and (dry_run or (st.needs is not None and not env_metrics.get(st.needs))):
            why = "dry run" if dry_run else f"{(st.needs or '').split('_')[0]} sees no CUDA device"
            res = {"status": "skipped", "reason": why, "command": " ".join(st.argv[1:])}
        elif left < min(10.0, st.budget):
            res = {"status": "skipped", "reason": f"global deadline: only {left:.0f} s left"}
        else:
            budget = min(st.budget, left)
            (out / "stages" / f"{st.name}.json").unlink(missing_ok=True)  # no stale result from an earlier run
            rc, secs, tail = _run_one(st, budget, out / "logs" / f"{st.name}.log", repo)
            if st.kind == "command":
                status = "timeout" if rc is None else ("ok" if rc == 0 else "failed")
                res = {"status": status, "reason": "" if rc == 0 else (f"exit code {rc}" if rc is not None
                       else f"killed after {budget:.0f} s"), "command": " ".join(st.argv[1:]), "output_tail": tail[-1500:]}
                report = out / f"conformance-{st.name.split('-', 1)[1]}.md"
                if report.is_file():
                    res["report_file"] = report.name
            else:
                path = out / "stages" / f"{st.name}.json"
                if rc is None:
                    res = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}  # partial results
                    res.update(status="timeout", reason=f"killed after {budget:.0f} s", output_tail=tail[-1500:])
                elif path.is_file():
                    res = json.loads(path.read_text(encoding="utf-8"))
                else:
                    res = {"status": "failed", "reason": f"exit code {rc}, no result written", "output_tail": tail[-1500:]}
            res["seconds"] = round(secs, 1)
        if st.name == "env" and res.get("status") == "ok":
            env_metrics = res.get("metrics", {})
        results["stages"][st.name] = res
    results["total_s"] = round(time.perf_counter() - t_start, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    (out / "report.md").write_text(render_report(results), encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m gpu_check [--out DIR] [--dry-run] [--deadline S]``."""
    ap = argparse.ArgumentParser(prog="python -m gpu_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-report",
                    help="report folder (default: $OUT or ./gpu-report)")
    ap.add_argument("--dry-run", action="store_true",
                    help="CPU mode: skip every GPU part with a reason, run the CPU parts tiny, still write the report")
    ap.add_argument("--deadline", type=float, default=460.0, help="global time limit in seconds (default 460)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every stage budget (default 1)")
    ap.add_argument("--only", nargs="*", help="run only these stages (env always runs)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any stage failed or timed out")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    results = run(out, dry_run=args.dry_run, deadline=args.deadline, scale=args.scale, only=args.only)
    bad = [n for n, r in results["stages"].items() if r.get("status") in ("failed", "timeout")]
    print(f"gpu-check: report written to {out / 'report.md'} in {results['total_s']} s"
          + (f"; failed/timed out: {', '.join(bad)}" if bad else ""))
    return 1 if (args.strict and bad) else 0

