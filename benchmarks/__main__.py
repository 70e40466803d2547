"""``python -m benchmarks [memory] [throughput] [accuracy] [stream] [scaling] [--quick] [--out DIR] [--threads N] [--device D]``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

from . import BENCHMARKS

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _pin_threads(n: int) -> None:
    """Give every framework ``n`` threads, before NumPy/BLAS, torch or XLA are imported
    (oversubscribed BLAS/OpenMP threads spin and distort timings on shared cores)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the named benchmarks (all by default) and write their results."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], default=[], metavar="NAME",
                   help=f"benchmarks to run: {', '.join(BENCHMARKS)} [all]")
    p.add_argument("--quick", action="store_true", help="smoke run: fewer T values, smaller network, 1 epoch")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"output folder [{RESULTS_DIR}]")
    p.add_argument("--threads", type=int, default=None, help="threads of every framework (BLAS, torch, XLA) [their defaults]")
    p.add_argument("--device", default="cpu", help="torch device for TESS-torch and BPTT [cpu]")
    args = p.parse_args(argv)
    if args.threads:
        _pin_threads(args.threads)
    if args.threads is None or args.threads > 1:
        # idle OpenMP threads sleep instead of spinning: on a busy machine the default (spin) policy
        # made 2-thread torch batches ~30x slower (10 s vs 0.34 s per VGG batch on 2 shared cores)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        module.run(args.out, quick=args.quick, threads=args.threads, device=args.device,
                   log=lambda s: print(s, flush=True))
        print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
