# segnas developer commands. `make install` once, then `make test`.
PY ?= .venv/bin/python
PIP ?= .venv/bin/pip

.PHONY: install test test-slow lint bench bench-gpu notebooks clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## create .venv and install segnas with its dev extras
	python3 -m venv .venv
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[dev]"

test:  ## fast test suite (what CI runs)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

test-slow:  ## only the slow tests: subprocesses (DDP, torchrun, sweeps, notebooks) and real training budgets
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m slow

notebooks:  ## execute every notebook in notebooks/ headless (from a clean kernel)
	$(PY) -m pytest -q -m slow tests/test_notebooks.py

lint:  ## ruff
	$(PY) -m ruff check src tests benchmarks experiments

bench:  ## speed/memory benchmarks -> benchmarks/results/*.md
	$(PY) benchmarks/run.py

bench-gpu:  ## GPU benchmark (< 8 min) -> benchmarks/results/gpu_*.md, then the gpu tests; exits 0 without a GPU
	$(PY) benchmarks/gpu.py && OMP_NUM_THREADS=1 $(PY) -m pytest -q -m gpu tests/test_gpu.py tests/test_precision.py

clean:  ## remove caches and run outputs
	rm -rf outputs multirun .pytest_cache .ruff_cache build dist src/*.egg-info
