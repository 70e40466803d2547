"""tess benchmarks: measured claims, written as JSON and Markdown under ``benchmarks/results/``.

Run ``python -m benchmarks [memory] [throughput] [accuracy] [stream] [scaling] [--quick]`` (``make bench``
runs them all).  Ratios are measured in one run on one machine; the JSON files
record the machine, versions and thread settings next to the numbers.  This package
is not part of the wheel.
"""

BENCHMARKS = ("memory", "throughput", "accuracy", "stream", "scaling")
"""Benchmark module names, in the order ``python -m benchmarks`` runs them."""
