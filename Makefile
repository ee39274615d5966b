# The project's verbs. Every target does its own set-up on a fresh machine (Python 3.11 + make).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_ROWS ?= 1000000
BENCH_LEAK_ROWS ?= $(BENCH_ROWS)
FUZZ_SECONDS ?= 60
# Test processes (pytest-xdist): one per core of CI's two; TEST_WORKERS=0 runs them in this one.
TEST_WORKERS ?= 2

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: install lock gpg demo test lint bench bench-clean fuzz reliability clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml setup.py matching/_hmac.c matching/_scan.c matching/_german.h matching/_bits.c \
		notify/_files.c notify/_eml.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@# compat: the source tree goes on sys.path, so tests/<pkg> folders never shadow a package
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

# One resolution (uv.lock), exported for pip: requirements.lock (runtime + dev, what `make`
# installs), requirements.txt (runtime only, for Prefect workers) and pylock.toml (PEP 751).
UV_VERSION := 0.13.9
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet uv==$(UV_VERSION)
	.venv-lock/bin/uv lock --python 3.11
	.venv-lock/bin/uv export --frozen --all-extras --no-emit-project --no-hashes --format requirements-txt -o requirements.lock
	.venv-lock/bin/uv export --frozen --no-emit-project --no-hashes --format requirements-txt -o requirements.txt
	.venv-lock/bin/uv export --frozen --no-emit-project --format pylock.toml -o pylock.toml

demo: $(STAMP)
	$(BIN)/leakwatch demo

# gpg checks our OpenPGP output in the tests; Debian's gnupg where it is missing (CI is root).
gpg:
	@command -v gpg >/dev/null || (apt-get update -qq && apt-get install -y -qq gnupg >/dev/null)

test: $(STAMP) gpg
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench --rows $(BENCH_ROWS) --leak-rows $(BENCH_LEAK_ROWS)

# The outboxes the bench runs set aside (a run deletes none: see bench/cli.py, _set_aside).
bench-clean:
	rm -rf bench-output/outboxes

fuzz: $(STAMP)
	$(BIN)/python -m reliability.fuzz --seconds $(FUZZ_SECONDS)

reliability: $(STAMP)
	$(BIN)/python -m reliability --fuzz-seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .venv-lock demo-output .leakwatch .pytest_cache .mypy_cache .ruff_cache
