# Two entry points (README): `make run` and `make test`. Both create the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# The main job on the embedded default: check the demo listings with the shipped rules and model.
run: setup
	$(BIN)/moderation check --input examples/listings.jsonl

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python scripts/bench_rules.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
