# mlflow-monitor developer commands. `make demo` and `make test` do all setup.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/hot_path.py
	$(PY) benchmarks/training_overhead.py
	$(PY) benchmarks/sampler_cost.py
	$(PY) benchmarks/gate_drift.py --quick
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info mlruns mlartifacts mlflow.db .mlflow_monitor
