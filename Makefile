# Two commands do all the set-up (see README.md):
#   make demo   -> venv + MNIST + train RL-I2IT and its baselines (~15 min on 2 CPU cores) + table
#   make test   -> venv + the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MINUTES ?= 3.5
OUT ?= runs/digits-demo

.PHONY: demo test bench clean

$(BIN)/.installed: pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11) and f"rl-i2it needs Python 3.11 or newer; $(PY) is {sys.version.split()[0]}: make PY=python3.11 ...")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/rl-i2it data fetch mnist
	$(BIN)/rl-i2it experiment digits --minutes $(MINUTES) --out $(OUT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/digits.py --quick --json runs/bench-digits.json

clean:
	rm -rf $(VENV) runs
