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

# Peers of bench/inference.py, bench only (never needed by `make test`): faiss, and face_recognition on
# the dlib-bin we already have (--no-deps, so it cannot pull a source dlib); face_recognition_models
# imports pkg_resources, which setuptools 81 removed.
BENCH_PEERS := $(VENV)/.joyedge-bench-peers
$(BENCH_PEERS): $(STAMP)
	$(BIN)/python -m pip install -q faiss-cpu "setuptools<81"
	$(BIN)/python -m pip install -q --no-deps face_recognition==1.3.0 face_recognition_models==0.3.0
	@touch $(BENCH_PEERS)

bench: venv system models $(BENCH_PEERS)
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
