# Two commands from a fresh clone: `make demo` and `make test`.
# Each creates .venv on first use; nothing is installed outside it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench completions clean

$(BIN)/agentctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(BIN)/agentctl
	$(BIN)/python -m testing.demo

test: $(BIN)/agentctl
	$(BIN)/ruff check agentctl testing tests bench
	$(BIN)/ruff format --check agentctl testing tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(BIN)/agentctl
	$(BIN)/python bench/bench_validate.py
	$(BIN)/python bench/bench_apply_aws.py
	$(BIN)/python bench/bench_kill.py

completions: $(BIN)/agentctl
	$(BIN)/python -m agentctl.cli.completions completions/

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
