# tess — set-up and checks. Every target installs what it needs into $(VENV).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
CONSTRAINTS := -c constraints.txt
TEST_EXTRAS ?= test,torch,jax,cupy,docs,nir
# Tests run BLAS/OpenMP single-threaded: their matrices are small, and threaded
# OpenBLAS on 2 shared cores was measured 20x slower (0.6 s vs 13 s for 2 epochs of
# digits) whenever another process competes. Benchmarks set threads themselves.
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: demo test test-notorch reports docs docs-check bench venv install-demo install-test clean gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

venv: $(BIN)/python

install-demo: venv
	$(PIP) install $(CONSTRAINTS) -e .

# torch==2.13.0 first: the CPU wheel on this machine's disk (no CUDA download).
install-test: venv
	$(PIP) install $(CONSTRAINTS) torch==2.13.0
	$(PIP) install $(CONSTRAINTS) -e '.[$(TEST_EXTRAS)]'
	$(PIP) install --no-deps --no-build-isolation -e examples/example_backend
	# the NIR peer framework of tests/tess/test_export_peer.py (CPU torch is already installed)
	$(PIP) install $(CONSTRAINTS) snntorch nirtorch

# One BLAS/OpenMP thread, chosen on purpose: the demo's matrices are small, and threaded
# BLAS on a busy 2-core machine made it ~3x slower (12.3 s vs 4.3 s; docs/datasets-cli.md).
# `make demo DEMO_THREADS=2` on an idle machine (tess sets OMP_WAIT_POLICY=PASSIVE above one).
DEMO_THREADS ?= 1

demo: install-demo
	$(BIN)/tess train --backend numpy --dataset digits --epochs 10 --seed 0 --threads $(DEMO_THREADS)

# Measured from a fresh clone on the shared 2-core machine (CI=true bash .ci/run, 2026-12-01):
# 9 min 35 s in all — install ~75 s; pytest ~240 s (slowest: the headless-Chromium probe of
# every docs page ~35 s, the data-parallel tests ~40 s, the streaming equivalence on jax, the
# NIR peer test, the bounded mutation meta-tests); conformance ci numpy/torch/example ~16 s
# each, jax ~150 s (an XLA compile per drawn config); the no-torch virtualenv ~60 s.
test: install-test
	sh docs/scripts/ensure-chromium.sh
	$(TEST_ENV) $(BIN)/python -m pytest -q
	# conformance, ci profile, on every backend whose framework is installed; jax compiles once
	# per drawn config, so it gets 3 Hypothesis examples per property test and float32 only
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend numpy --profile ci
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend torch --profile ci --skip-unavailable
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend jax --profile ci --skip-unavailable --dtype float32 --examples 3
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend example --profile ci
	$(MAKE) --no-print-directory test-notorch

# The suite as an outside implementer meets it after `pip install 'tess[test]'` and nothing
# else: a separate virtualenv without torch or jax, the example backend, the ci profile. The
# gradient properties then use the finite-difference oracle, and the run must say so.
NOTORCH := build/venv-notorch
NOTORCH_PIP := $(NOTORCH)/bin/python -m pip --disable-pip-version-check -q

$(NOTORCH)/bin/python:
	$(PYTHON) -m venv $(NOTORCH)
	$(NOTORCH_PIP) install --upgrade pip setuptools wheel

test-notorch: $(NOTORCH)/bin/python
	$(NOTORCH_PIP) install $(CONSTRAINTS) -e '.[test]'
	$(NOTORCH_PIP) install --no-deps --no-build-isolation -e examples/example_backend
	$(NOTORCH)/bin/python -c "import importlib.util as u, sys; bad = [m for m in ('torch', 'jax') if u.find_spec(m)]; sys.exit(f'{bad} is installed in $(NOTORCH): this check needs an environment without them' if bad else 0)"
	$(TEST_ENV) $(NOTORCH)/bin/python -m tess.conformance --backend example --profile ci > build/notorch-conformance.log 2>&1 || { cat build/notorch-conformance.log; exit 1; }
	tail -n 2 build/notorch-conformance.log
	grep -q "oracle: finite differences" build/notorch-conformance.log || { echo "the no-torch run did not report the finite-difference oracle"; exit 1; }

# Every committed conformance report of the support matrix (docs/reports/*.md + .json,
# docs/support-matrix.md), thorough profile, with the exact commands. Measured on the shared
# 2-core machine (one job at a time): numpy ~1 min, torch ~2 min, example ~6 min (both dtypes
# each); jax compiles a program per drawn config, so it runs per dtype with JAX_EXAMPLES
# Hypothesis examples per property test (the report header says so). A failing run stops
# here with its report written.
JAX_EXAMPLES ?= 40
JAX_NOTE := jax compiles one XLA program per drawn config, so property tests run $(JAX_EXAMPLES) Hypothesis examples, not 150: a full thorough run (150) had not finished after 61 min on the shared 2-core machine; 20 examples took 10 min (float32)
REPORT := $(TEST_ENV) $(BIN)/python -m tess.conformance --profile thorough

reports: install-test
	$(REPORT) --backend numpy --report docs/reports/numpy.md
	$(REPORT) --backend torch --report docs/reports/torch.md
	$(REPORT) --backend example --report docs/reports/example.md
	$(REPORT) --backend jax --dtype float32 --examples $(JAX_EXAMPLES) --note "$(JAX_NOTE)" --report docs/reports/jax-float32.md
	$(REPORT) --backend jax --dtype float64 --examples $(JAX_EXAMPLES) --note "$(JAX_NOTE)" --report docs/reports/jax-float64.md

docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The site built once, then checked: API coverage, generated pages, and a real browser
# (headless Debian Chromium, installed here if missing) typesetting the math offline.
docs-check: install-test
	sh docs/scripts/ensure-chromium.sh
	rm -rf build/docs-site
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/docs-site
	TESS_DOCS_SITE=build/docs-site $(BIN)/python -m pytest -q -p no:cacheprovider tests/docs

bench: install-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf build dist site *.egg-info .pytest_cache

# One time-boxed check on an NVIDIA GPU machine (< 8 min; docs/gpu-check.md): conformance of
# cupy / torch / jax on CUDA, TESS throughput on VGG-9, peak memory TESS vs BPTT, fused-kernel
# bandwidth. Runs from this source tree (no install); Markdown report into $OUT (default
# ./gpu-report). CPU mode: make gpu-check GPU_CHECK_ARGS=--dry-run
gpu-check:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(PYTHON) -m gpu_check --out "$${OUT:-gpu-report}" $(GPU_CHECK_ARGS)
