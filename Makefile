# Two commands on a fresh machine: `make run` and `make test`. Both install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install run test test-slow test-gpu-sim bench bench-workers clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

# Brings the whole fleet up: embedded redis-server (unless REDIS_URL is set), API, workers.
run: install
	$(PY) -m workers.fleet

test: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

bench: install
	$(PY) -m filters.benchmark

bench-workers: install
	$(PY) -m workers.benchmark

clean:
	rm -rf $(VENV) var .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
