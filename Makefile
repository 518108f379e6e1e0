# Two commands on a fresh machine: `make demo` (main job on Milvus Lite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Fetches Big Buck Bunny (CC-BY, from the PyPI sdist of moviepy 2.2.1), cuts reference clips
# and an edited copy, ingests the references into ./demo_data/vidret.db and searches the copy.
demo: $(STAMP)
	$(BIN)/python scripts/fetch_media.py --only bbb
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fingerprint.py
	$(BIN)/python benchmarks/bench_search.py

clean:
	rm -rf $(VENV) demo_data .pytest_cache
