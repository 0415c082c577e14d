# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out
DEMO_PRESET ?=

.PHONY: setup test test-fast test-slow lint demo bench clean

setup: $(STAMP)

# torch and torchvision are installed first, pinned as a matching pair: torchvision's wheels are
# built against one torch release, and PyPI's torchvision does not import beside another torch.
# These exact versions are the ones this project's machines hold on local disk (pip's constraints
# there cap torch at them); elsewhere pip downloads them. They are PyPI's CUDA builds, which run on
# the CPU too: most of the 6.4 GB .venv. The extras timm and gradcam (pytorch-grad-cam) are
# installed with the test extra, so their tests run for real.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[all,test,deepfakebench,timm,gradcam]'
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
	$(BIN)/fstmatch demo --out $(DEMO_OUT) $(if $(DEMO_PRESET),--preset $(DEMO_PRESET))

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
