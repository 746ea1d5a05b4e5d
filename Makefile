# `make demo` and `make test` work on a machine with only python3 (3.11+) and make:
# they create .venv and install what they need into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# Needs Debian's chromium (apt-get install chromium); writes docs/images/studio-*.png
screenshots: $(STAMP)
	$(PY) examples/screenshots.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

# Bytecode first: with PYTHONDONTWRITEBYTECODE=1 (set on this project's machines) every job, scheduler and
# step process the tests start would compile runyard from source again (~0.5 s each).
# Three workers on two cores: about a quarter of the suite's time is spent waiting on servers, jobs and
# browsers, which a third worker fills.
unit: $(STAMP)
	$(VENV)/bin/python -m compileall -q src
	$(VENV)/bin/pytest -n 3 -q

test: lint unit

bench/.venv-compare/.installed:
	$(PYTHON) -m venv bench/.venv-compare
	bench/.venv-compare/bin/pip install --quiet metaflow prefect mlflow 'fastapi<0.150'
	touch $@

bench: $(STAMP) bench/.venv-compare/.installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'  # Ray Data, for bench/bench_parallel.py
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-workspace
