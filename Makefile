# Two commands do all the set-up on a fresh machine (Python 3.11+ with venv):
#   make demo   simulators and a bridge on them, at http://127.0.0.1:5000
#   make test   lint, type check, Dockerfile lint and the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint pytest bench clean sparkplug

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): installing device-bridge and its dependencies (about a minute, once)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[service,dev,examples]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/device-bridge demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint pytest

# The Sparkplug B module, generated from bridge/north/sparkplug_b.proto and committed;
# tests/test_sparkplug.py fails when it is not up to date.
sparkplug: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Ibridge/north --python_out=bridge/north \
		--pyi_out=bridge/north bridge/north/sparkplug_b.proto

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
