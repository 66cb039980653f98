# Two commands matter: `make run` (the product, embedded) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

export AIRFLOW_HOME ?= $(CURDIR)/var/airflow

.PHONY: setup run demo test lint lock bench clean browser

#: The browser tests drive Debian's chromium (Playwright never downloads one); root installs it directly.
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: $(STAMP)

browser:            ## Debian's chromium for the browser tests (tests/ui/test_browser.py), if missing
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*; touch $@

run: setup          ## Airflow standalone + sandboxes + a demo company, on SQLite
	$(BIN)/mamo-revenue run

demo: setup         ## one period, headless: post it and print the journal
	$(BIN)/mamo-revenue demo

test: setup browser ## the whole suite, on PostgreSQL 127.0.0.1:5432
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

bench: setup       ## the speed and memory benchmarks (figures in docs/benchmarks.md)
	$(BIN)/python benchmarks/bench_engine.py --scenario both
	$(BIN)/python benchmarks/bench_dag_parse.py
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_backfill.py   # ~30 min: a 365-day backfill on a real scheduler

lock:               ## re-resolve requirements.txt into requirements.lock
	$(BIN)/uv pip compile requirements.txt -o requirements.lock --python-version 3.11

clean:
	rm -rf var $(VENV)
