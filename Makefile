# The two commands a newcomer needs:  make demo  (set up + offline demo)  and  make test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: setup strace chromium curl graphviz demo lint test test-min bench

setup: $(VENV)/.installed strace chromium curl graphviz

# tests/test_offline.py traces a whole session with strace: installed where apt-get can (Debian, as root, as on
# CI); elsewhere that test is skipped.
strace:
	@command -v strace >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y strace; \
		else echo "strace is missing (apt-get install strace): tests/test_offline.py will be skipped"; fi; }

# tests/test_web.py drives Debian's Chromium with Playwright (the pip package only: browsers are never downloaded);
# installed where apt-get can, elsewhere that test is skipped.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y chromium; \
		else echo "chromium is missing (apt-get install chromium): tests/test_web.py will be skipped"; fi; }

# docs/server.md's examples call the running server with curl, as a reader would (tests/test_docs.py runs them).
curl:
	@command -v curl >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y curl; \
		else echo "curl is missing (apt-get install curl): the docs/server.md examples in tests/test_docs.py will fail"; fi; }

# `engram graph --format png` draws with Graphviz's dot program (tests/test_cli_graph.py draws one).
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y graphviz; \
		else echo "graphviz is missing (apt-get install graphviz): the PNG test of tests/test_cli_graph.py will be skipped"; fi; }

# CPU torch first (it is only used once, to export the embedding model to ONNX): an unpinned torch
# would pull gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/engram demo

# The rule set and its reasons are in pyproject.toml ([tool.ruff], [tool.mypy]); CI runs it as part of test.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint
	$(PY) -m pytest -q

# The suite against the lowest versions pyproject.toml allows (every direct dependency pinned to its '>='
# bound by .ci/lowest_constraints.py; pip has no lowest resolution), in its own venv. Slow; not part of test.
VENV_MIN ?= .venv-min
PY_MIN := $(VENV_MIN)/bin/python

$(VENV_MIN)/.installed: pyproject.toml .ci/lowest_constraints.py
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(PY_MIN) -m pip install --quiet torch==2.13.0
	$(PYTHON) .ci/lowest_constraints.py pyproject.toml > $(VENV_MIN)/constraints.txt
	$(PY_MIN) -m pip install --quiet -c $(VENV_MIN)/constraints.txt -e '.[dev]'
	touch $@

test-min: $(VENV_MIN)/.installed strace chromium curl graphviz
	@echo "lowest allowed versions: $$(tr '\n' ' ' < $(VENV_MIN)/constraints.txt)"
	$(PY_MIN) -m pytest -q

bench: setup
	$(PY) bench/search_latency.py
	$(PY) bench/add_throughput.py
	$(PY) bench/cli_cold_start.py
	$(PY) bench/qdrant_vs_sqlite.py
	$(PY) bench/llm_calls_locomo.py ../shared/data/locomo_dev.json
	$(PY) bench/reliability.py
