# The README's two commands: `make demo` (a full simulated call) and `make test` (the whole suite).
# Both create or reuse .venv and install what they need; safe to run again.
PY ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cellcall run goals/examples/dentist.md --line emulator --scenario dentist

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check cellcall tests
	$(VENV)/bin/ruff format --check cellcall tests
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/cellcall bench

clean:
	rm -rf $(VENV) build *.egg-info
