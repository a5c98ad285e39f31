# basketcast: `make demo` runs the main job on the shipped data, `make test` runs every test.
# Both set up everything on a fresh machine (virtualenv, Kafka jars, redis-server).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
# cargo (rustup's) builds the native reader, stream/native, at install time
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: venv services services-down services-status test test-unit lint demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml stream/native/Cargo.toml stream/native/Cargo.lock stream/native/src/lib.rs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $@

services: venv          ## start Kafka (KRaft) and Redis on loopback; idempotent
	$(PY) -m stream.services up

services-down:          ## stop what `make services` started (pid files), nothing else
	@if [ -x $(PY) ]; then $(PY) -m stream.services down; fi

services-status:
	$(PY) -m stream.services status

test: venv services     ## every test: unit and integration (real Kafka and Redis)
	$(BIN)/pytest

test-unit: venv         ## unit tests only, no services, seconds
	$(BIN)/pytest -m "not integration"

lint: venv
	$(BIN)/ruff check .

demo: venv services    ## the main job on the shipped data: train if needed, worker, replay, live scores, summary
	$(BIN)/basketcast demo

clean: services-down
	rm -rf .cache models reports
