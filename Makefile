# Everything a newcomer needs: `make demo` runs the study on the embedded profile, `make test` runs the tests.
# Both create .venv/ and install what they need on a fresh machine (Python >= 3.11 with venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export VALLEY_PROJECT_DIR ?= $(CURDIR)

.PHONY: install demo test rehearsal ui sandbox clean-demo bench-demo

$(VENV)/.installed: pyproject.toml docker/trainer/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel first: an unpinned torch would pull gigabytes of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	# The tested versions (the trainer image installs the same pins): a fresh resolve picks other releases than an
	# upgraded venv (datasets 5.1 / fsspec 2026.7 instead of 5.2 / 2026.9, seen on a fresh clone).
	$(PY) -m pip install -q -c docker/trainer/constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/valley demo

test: install
	bash scripts/test.sh

# The production profile rehearsed on this machine (k8s/README.md, section 5); `bash scripts/rehearsal_setup.sh` first.
rehearsal: install
	bash scripts/test.sh -m rehearsal tests/rehearsal/test_rehearsal.py

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/dagster dev -w workspace.yaml

sandbox:
	bash sandbox/ci_setup.sh

bench-demo: install
	$(PY) benchmarks/demo_wallclock.py

clean-demo:
	rm -rf .dagster_home .valley/demo
