# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv, install CPU
# torch first (so pip never pulls a multi-GB CUDA build), then the package with its test extras
# under a constraint that keeps that torch.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mprm-installed
PYTEST_ARGS ?= -n 2 --timeout 900
# Extra pip arguments for the torch install, e.g. `--index-url <PyTorch's CPU wheel index>` on a
# machine whose package index would otherwise serve the CUDA build.
TORCH_PIP_ARGS ?=

.PHONY: demo test setup clean lint

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_PIP_ARGS) "torch==$(TORCH_VERSION)"
	echo "torch==$(TORCH_VERSION)" > $(VENV)/constraints.txt
	$(PIP) install -q -e ".[test,rl]" -c $(VENV)/constraints.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mprm demo --output runs/demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs build *.egg-info
