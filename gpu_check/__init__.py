"""``make gpu-check``: one time-boxed script that checks tess on an NVIDIA GPU machine.

Run from a source checkout: ``PYTHONPATH=. python -m gpu_check [--out DIR] [--dry-run]``.
See :mod:`gpu_check.runner` for the stages and ``docs/gpu-check.md`` for the guide.
"""
