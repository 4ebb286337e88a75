# The two commands of the README:
#   make check   set up .venv, check every shipped rule and print the verdicts
#   make test    set up .venv, run the test suite (in parallel; CI=true: with the slow tests)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: check test referee gate lock bench counterexamples lint install clean bytecode

check: $(STAMP) bytecode
	@# exit 1 means "some rule violates a property", which old and legacy do by design;
	@# only usage errors (2), inconclusive verdicts (3) and internal errors (4) fail here
	@$(BIN)/checker check --all; status=$$?; test $$status -le 1 || exit $$status

# the suite on every core (pytest-xdist); without CI set, the tests marked slow
# (exhaustive sweeps, fuzzing, the installed wheel, the SPIN referee's whole matrix)
# are left out: CI runs them
PYTEST_ARGS ?= -n auto --dist worksteal $(if $(CI),,-m "not slow")

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the SPIN referee alone: every rule, era and MMU at 1-3 vCPUs, and the mutants (CI
# runs it within make test)
referee: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal tests/test_spin.py

# the CI gate: every rule against its [expect] table and specs/verdicts.lock.json
# (exit 1 a regression or a violated expectation, 2 a stale lockfile)
gate: $(STAMP)
	$(BIN)/checker gate
	$(BIN)/checker history

# refresh specs/verdicts.lock.json after a deliberate change to a rule or the model;
# refused if the gate fails, so a regression cannot be locked in
lock: $(STAMP)
	$(BIN)/checker gate --update

# BENCH_ARGS: sections (end-to-end, engines, spin) and --spin-budget S, e.g.
# make bench BENCH_ARGS="spin --spin-budget 3600" runs SPIN at 12 vCPUs too
BENCH_ARGS ?=
bench: $(STAMP) bytecode
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# regenerate the committed canonical counterexamples
counterexamples: $(STAMP)
	@$(BIN)/checker check --all --out counterexamples >/dev/null; test $$? -le 1
	@$(BIN)/checker scenario clear-dirty-log-init-set --out counterexamples >/dev/null

lint: $(STAMP)
	$(BIN)/ruff check checker tests bench
	$(BIN)/ruff format --check checker tests bench
	$(BIN)/mypy

install: $(STAMP)

# Compile the package's bytecode ahead of time: where PYTHONDONTWRITEBYTECODE is
# set (it is on the development machines), Python would otherwise recompile every
# module on every run, about a fifth of a short check's time. compileall skips
# up-to-date files, so this is cheap to repeat.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q checker

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
