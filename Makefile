# Every target creates or reuses .venv by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DS_ACCELERATOR ?= cpu
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test bench lint clean

install: $(STAMP)

# torch==2.13.0 is pinned: on a machine without CUDA pip takes the cached CPU wheel.
$(STAMP): setup.py requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[test]'
	touch $@

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) bench/data_prep.py
	$(PY) bench/kernels.py
	@if [ -f bench/train_step.py ]; then $(PY) bench/train_step.py; fi
	$(PY) bench/veco_step.py
	$(PY) bench/veco_ablation.py
	$(PY) bench/mglm_step.py

clean:
	rm -rf $(VENV) build *.egg-info
