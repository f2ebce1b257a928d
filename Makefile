# Two commands for a newcomer: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo's port: `make run PORT=8471` when 8470 is taken.
PORT ?= 8470

.PHONY: run test lint types pytest bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PY) not found)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kith demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check protocol node tests bench docker
	$(BIN)/ruff format --check protocol node tests bench docker
	$(BIN)/hadolint docker/Dockerfile

types: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy docker/entrypoint.py

pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -W error
	$(BIN)/coverage combine -q 2>/dev/null || true
	$(BIN)/coverage report --include='protocol/*' --fail-under=100
	$(BIN)/coverage report --include='node/*'

test: lint types pytest

bench: $(STAMP)
	$(BIN)/python -m bench.protocol_bench
	$(BIN)/python -m bench.node_bench
	$(BIN)/python -m bench.stream_bench
	$(BIN)/python -m bench.federation_bench
	$(BIN)/python -m bench.overflow_bench
	$(BIN)/python -m bench.life_bench
	$(BIN)/python -m bench.board_bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage* htmlcov
