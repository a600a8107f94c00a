# The two commands: `make run` starts the whole system, `make test` runs every test.
# Both set up the virtual environment first; only Python >= 3.11 has to be there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast faults lint mypy lock pre-commit contracts bench bench-gateway install clean

# The floor of `make test`'s line coverage (chassis, contracts, services, gateway; measured in the pytest process,
# so services a test starts as subprocesses count nothing). Raise it when the figure rises.
COVERAGE_FLOOR ?= 83

# Everything installs from the lock with its hashes (pip refuses a file whose hash is not there); the project
# itself goes in last, without dependencies, built by the locked setuptools.
$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/run.py

# Two rounds: the tests that may share the machine on TEST_WORKERS workers (each with its own broker and databases),
# then the ones marked serial alone (tests/conftest.py SERIAL_SUITES: they measure time or load every core). Both
# rounds run even when the first fails (5, no test selected, is no failure); coverage adds up over both.
TEST_WORKERS ?= 2
test: $(STAMP)
	@status=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not serial" --cov --cov-report= $(PYTEST_ARGS) \
		|| { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	$(PY) -m pytest -m serial --cov --cov-append --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR) \
		$(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	exit $$status

# The pure tests: no database, broker, browser or network, two workers; seconds, for the edit-test loop (the few
# marked slow, a property test of half a minute, run in `make test`; the property tests run a quarter of their
# examples, tests/unit/conftest.py). Without schemathesis's plugin, which only the OpenAPI fuzz tests use: each of
# the three processes spent a second or two importing it.
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -p no:cacheprovider -p no:schemathesis --hypothesis-profile=edit-loop -m "not slow" \
		tests/unit tests/contract/test_schema_compatibility.py $(PYTEST_ARGS)

# The fault-injection suite at the issue's lengths (600 newcomers per fault, the broker away 20 s, a partner's
# webhook receiver down a minute); `make test` runs it with a shorter load (tests/faults/conftest.py).
faults: $(STAMP)
	FAULTS_PROFILE=long $(PY) -m pytest tests/faults --timeout=900 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory mypy
	$(VENV)/bin/lint-imports
	$(PY) -m contracts.schemagen --check

# Write the lock files anew from pyproject.toml: versions already locked stay unless LOCK_ARGS says otherwise
# (LOCK_ARGS=--upgrade, or --upgrade-package NAME); requirements.lock is the image's, requirements-dev.lock adds dev.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' pyproject.toml --group build $(LOCK_ARGS)
lock: $(STAMP)
	$(UV_COMPILE) -o requirements.lock
	$(UV_COMPILE) --extra dev -c requirements.lock -o requirements-dev.lock

# ruff and mypy before each commit (.pre-commit-config.yaml; local hooks from .venv, no download at commit time).
pre-commit: $(STAMP)
	$(VENV)/bin/pre-commit install

# What strict mypy checks: the whole tree (pyproject's [tool.mypy] is strict); `make lint` and the pre-commit hook run it.
MYPY_PATHS = chassis contracts services gateway tests bench scripts reference
mypy: $(STAMP)
	$(VENV)/bin/mypy $(MYPY_PATHS)

bench: $(STAMP)
	$(PY) -m bench.pipeline

bench-gateway: $(STAMP)
	$(PY) bench/run.py

contracts: $(STAMP)
	$(PY) -m contracts.schemagen

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
