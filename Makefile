# lifelong: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export LIFELONG_HOME ?= $(CURDIR)/.cache
export LIFELONG_SIGNING_KEY_FILE ?= $(LIFELONG_HOME)/signing.key
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help install system-deps key demo test test-unit lint services-up services-down bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)  ## create .venv and install lifelong with its test tools (once)

system-deps:  ## make sure java, mvn, redis-server, prometheus are there (apt-get when root)
	@bash deploy/system-deps.sh

key: $(LIFELONG_SIGNING_KEY_FILE)  ## a local HMAC key for signing models (never commit it)
$(LIFELONG_SIGNING_KEY_FILE):
	@mkdir -p $(dir $@) && umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_hex(32))' > $@

demo: system-deps install key  ## start Kafka, Redis, Prometheus and stream a drifting workload through the learner
	$(BIN)/lifelong demo

test: system-deps install key  ## run every test against real Kafka, Redis and Prometheus
	$(BIN)/lifelong services up
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install  ## the fast tests only (no services)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

services-up: system-deps install  ## start the local services
	$(BIN)/lifelong services up

services-down: install  ## stop the local services
	$(BIN)/lifelong services down

bench: system-deps install key  ## benchmarks (ratios against bare baselines)
	$(BIN)/python -m bench

clean:  ## remove the virtualenv and caches (keeps downloaded Kafka jars in .cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
