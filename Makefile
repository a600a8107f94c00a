# The two commands: `make run` starts the whole system, `make test` runs every test.
# Both set up the virtual environment first; only Python >= 3.11 has to be there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test faults lint contracts bench bench-gateway install clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/run.py

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The fault-injection suite at the issue's lengths (600 newcomers per fault, the broker away 20 s, a partner's
# webhook receiver down a minute); `make test` runs it with a shorter load (tests/faults/conftest.py).
faults: $(STAMP)
	FAULTS_PROFILE=long $(PY) -m pytest tests/faults --timeout=900 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chassis contracts services/*/domain.py services/monitoring/disclosure.py
	$(VENV)/bin/lint-imports
	$(PY) -m contracts.schemagen --check

bench: $(STAMP)
	$(PY) -m bench.pipeline

bench-gateway: $(STAMP)
	$(PY) bench/run.py

contracts: $(STAMP)
	$(PY) -m contracts.schemagen

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
