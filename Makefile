# One command each: `make demo` and `make test` set up .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO_OUT ?= demo-report

.PHONY: demo test test-all bench quality quality-family clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps re-install when pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[notebooks]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/nanotools run --out $(DEMO_OUT) --force
	@echo "open $(DEMO_OUT)/report.html"

test: $(VENV)/.test-installed
	MPLBACKEND=agg $(BIN)/python -m pytest

# The long checks: quality on every texture, 3-D, big maps.
test-all: $(VENV)/.test-installed
	MPLBACKEND=agg $(BIN)/python -m pytest -m "slow or not slow"

quality: $(VENV)/.test-installed
	MPLBACKEND=agg $(BIN)/python benchmarks/quality.py

# The validation family (issue 9): 40 draws at defaults, about 15 minutes.
quality-family: $(VENV)/.test-installed
	MPLBACKEND=agg $(BIN)/python benchmarks/quality.py --family 40 --json family.json --plot family_estimate.png

bench: $(VENV)/.test-installed
	$(BIN)/python -m pip install -q -e ".[bench]"
	MPLBACKEND=agg $(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache test-artifacts
