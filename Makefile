# Two commands for a newcomer: `make demo` and `make test`. Both set up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
APT_PACKAGES := fonts-noto-cjk fonts-dejavu-core fonts-noto-color-emoji chromium tesseract-ocr tesseract-ocr-eng postgresql sqlite3
OUT    ?= out/demo

.PHONY: setup demo test lint typecheck unit unit-core bench clean

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes or the venv is missing.
$(STAMP): pyproject.toml
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing Debian packages (run as root to install):$$missing"; fi; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	# The CPU build of torch first, so no later requirement pulls a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -e ".[all,dev]" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import optical_memory, torch, transformers, playwright, langchain" 
	touch $(STAMP)

demo: setup
	$(VENV)/bin/optical-memory demo --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check optical_memory tests benchmarks examples
	$(VENV)/bin/ruff format --check optical_memory tests benchmarks examples
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy optical_memory tests

unit: setup
	$(PY) -m pytest -n 2 --dist loadfile -q

# The quick loop: what needs neither torch, Chromium nor an OCR engine, nor runs for long.
unit-core: setup
	$(PY) -m pytest -n 2 --dist loadfile -q -m "not torch and not chromium and not ocr and not slow"

test: lint typecheck unit

bench: setup
	$(PY) benchmarks/render.py

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
