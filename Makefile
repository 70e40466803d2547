# tess — set-up and checks. Every target installs what it needs into $(VENV).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
CONSTRAINTS := -c constraints.txt
TEST_EXTRAS ?= test,torch,jax,docs

.PHONY: demo test docs bench venv install-demo install-test clean gpu-check

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

demo: install-demo
	$(BIN)/tess train --backend numpy --dataset digits --epochs 10 --seed 0

test: install-test
	$(BIN)/python -m pytest -q

docs: install-test
	$(BIN)/mkdocs build --strict

bench: install-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf build dist site *.egg-info .pytest_cache
