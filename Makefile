# Two entry points (README): `make run` and `make test`. Both create the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup native clean-native browser onnx run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The rules' hot modules compiled with mypyc (moderation/native.py), rebuilt when one of their sources
# has changed; without a C compiler the package runs from source, slower, with the same answers.
native: $(BIN)/.installed
	$(BIN)/python scripts/build_native.py

clean-native:
	$(BIN)/python scripts/build_native.py --clean

setup: $(BIN)/.installed native

# Browser tests drive Debian's Chromium (never a downloaded browser); install it if it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)
	@# Chinese glyphs for screenshots and the OCR tests' rendered pictures (without them: boxes, skipped tests).
	@fc-list 2>/dev/null | grep -qi "noto sans cjk" || (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk >/dev/null) || true

# Re-export the classifier's ONNX graph after retraining (the shipped model already has its checked
# model.onnx): load_model() scores with ONNX Runtime when the graph matches PyTorch, else with PyTorch.
onnx: setup
	$(BIN)/python -m pip install --quiet -e '.[onnx]'
	test -f var/classifier/data/test.jsonl || $(BIN)/python scripts/build_training_set.py
	$(BIN)/python scripts/export_onnx.py

# The main job on the embedded default (SQLite file under var/, shipped rules and model): the HTTP API
# and the reviewer console at http://127.0.0.1:8000/review, seeded with demo listings and accounts.
run: setup
	$(BIN)/moderation check --input examples/listings.jsonl
	$(BIN)/moderation serve --demo

test: setup browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python scripts/bench_rules.py

clean:
	-test -x $(BIN)/python && $(BIN)/python scripts/build_native.py --clean
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
