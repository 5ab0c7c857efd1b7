# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch lies on these machines' disk; pip finds it through its find-links. Elsewhere
# torch 2.13.0 comes from the registry: its +cpu build where the registry has one, else the default build.
TORCH_WHEELS ?= /opt/wheels
DEMO_DIR ?= runs/demo

.PHONY: venv test demo bench bench-venv clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if ls $(TORCH_WHEELS)/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then \
	  $(BIN)/pip install -q --find-links $(TORCH_WHEELS) -r requirements.lock; \
	else \
	  echo "note: no torch-2.13.0+cpu wheel in $(TORCH_WHEELS) (set TORCH_WHEELS=DIR): installing torch 2.13.0 from the package registry, which may be a large download." >&2; \
	  $(BIN)/pip install -q -r requirements.lock 2>/dev/null || { \
	    sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/' requirements.lock > $(VENV)/requirements.txt; \
	    $(BIN)/pip install -q -r $(VENV)/requirements.txt; }; \
	fi
	$(BIN)/pip install -q --no-deps -e .
	@$(BIN)/python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('2.13.0') else 'unexpected torch ' + v)"
	touch $(STAMP)

venv: $(STAMP)

# The test suite: lint and format checks first, then pytest on both cores, slow end-to-end checks
# included in their small CI versions.
test: venv
	$(BIN)/ruff check vidlearn tests bench
	$(BIN)/ruff format --check vidlearn tests bench
	$(BIN)/python -m pytest -n 2 -q tests

demo: venv
	$(BIN)/vidlearn study classic --out $(DEMO_DIR)

# Benchmarks against decord, torchcodec, PyAV and torchvision (docs/benchmarks.md): a separate
# environment, because the peers need a newer torch than the library pins.
BENCH_VENV  := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): requirements.lock bench/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	grep -v '^torch==' requirements.lock > $(BENCH_VENV)/library-requirements.txt
	$(BENCH_VENV)/bin/pip install -q -r $(BENCH_VENV)/library-requirements.txt -r bench/requirements.txt
	$(BENCH_VENV)/bin/pip install -q --no-deps -e .
	@ldconfig -p | grep -q libavcodec || echo "note: no system FFmpeg libraries: torchcodec will be left out (apt install ffmpeg)" >&2
	touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)

bench: bench-venv
	$(BENCH_VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs .pytest_cache
