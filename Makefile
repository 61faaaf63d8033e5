# One-command setup: every target bootstraps what it needs, idempotently.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.joyedge-installed
PYTEST_ARGS ?=

.PHONY: demo test bench lint proto system models venv clean

$(STAMP): setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

system:
	@tools/bootstrap-system.sh

models: $(STAMP)
	@$(BIN)/joyedge models fetch

demo: venv system models
	$(BIN)/joyedge demo

# pytest exits 5 when it collected nothing: that is a failure, not a pass.
test: venv system models
	@$(BIN)/ruff check .
	@$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: no tests ran" >&2; exit 1; fi; exit $$rc

bench: venv system models
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] || exit $$rc
	@for b in bench/search.py bench/inference.py bench/cloud.py bench/sync.py; do \
	  if [ -f $$b ]; then echo "== $$b"; $(BIN)/python $$b || exit 1; fi; \
	done

lint: venv
	$(BIN)/ruff check .

# Regenerate the committed gRPC code after editing api/v1/*.proto.
proto: venv
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. --pyi_out=. api/v1/*.proto

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
