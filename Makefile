# errorstream — the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test install lint format bench clean

## install: a virtualenv with errorstream and its pipeline + dev extras (re-run when pyproject changes)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[pipeline,dev]"
	touch $(STAMP)

install: $(STAMP)

## demo: Kafka + worker (embedded ClickHouse) + demo producer, alerts and timelines; Ctrl-C stops
demo: $(STAMP)
	$(VENV)/bin/errorstream demo

## test: lint, then the whole suite (unit + integration on a real broker and chDB)
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	  exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .

## bench: every benchmark script in turn (~30 min), then BENCHMARKS.md (bench/run_all.py)
bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .errorstream .pytest_cache
