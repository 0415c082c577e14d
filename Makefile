# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out
DEMO_PRESET ?= tiny

.PHONY: setup test test-fast test-slow lint demo bench clean

setup: $(STAMP)

# torch is installed first and pinned: torch==2.13.0 is a CPU build on local disk here, while an
# unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all,test,deepfakebench]'
	touch $(STAMP)

# The default suite (fast) and then the slow end-to-end tests, as CI runs them.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
	$(BIN)/python -m pytest -q -m slow

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check src tests benchmarks examples

demo: setup
	$(BIN)/fstmatch demo --out $(DEMO_OUT) --preset $(DEMO_PRESET)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
