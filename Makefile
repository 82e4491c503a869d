# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint docs bench clean-outputs

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the toolkit with pinned versions

demo: setup  ## the main job on the bundled sample
	$(BIN)/python -m src.extract encoder=resemblyzer
	$(BIN)/python -m src.train encoder=resemblyzer
	$(BIN)/python -m src.analyze run=latest:resemblyzer
	$(BIN)/python -m src.compare
	$(BIN)/python -m src.predict run=latest:resemblyzer input=data/sample/audio/vctk-p225 format=text progress=false
	$(BIN)/python -m src.predict run=default input=data/sample/audio/vctk-p225 format=text progress=false

test: setup  ## the whole test suite
	$(BIN)/python -m pytest -q

test-fast: setup  ## the math, configs, manifests, output formats and plots only (seconds): what to run while working
	$(BIN)/python -m pytest -q tests/test_math.py tests/test_files.py tests/test_configs.py tests/test_manifest.py tests/test_outputs.py tests/test_plots.py

lint: setup  ## ruff (rules in pyproject.toml): unused and undefined names, likely bugs, style
	$(BIN)/ruff check .

docs: setup  ## the docs site (mkdocs.yml, docs/) into site/; --strict: a broken link, anchor or docstring reference fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: setup  ## benchmarks (../shared/data; stream needs a data=dev run)
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/columns.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/serve.py

clean-outputs:  ## delete generated runs, embeddings, analysis and logs
	rm -rf runs/*-* models-embeddings/*/ post-analysis/*/ logs
