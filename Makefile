# Two commands on a fresh machine: `make run` and `make test`. Both install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install run test test-slow test-gpu-sim bench bench-workers bench-pixelart clean screenshots

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

# The dashboard's browser tests (Chromium: apt-get install chromium), saving each page to docs/screenshots/.
screenshots: install
	PIXELFLEET_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/dashboard -q

# The long runs `make test` leaves out (marked slow), e.g. the storage soak (a few minutes).
test-slow: install
	$(PY) -m pytest -m slow -s

bench: install
	$(PY) -m filters.benchmark

# A benchmark peer lives in its own venv under var/bench/, installed from its own
# requirements file, never into the project's: $(call peer_venv,VENV,REQUIREMENTS).
peer_stamp = $(1)/.installed-$(shell cksum $(2) | cut -d' ' -f1)
define peer_venv
$(call peer_stamp,$(1),$(2)): $(2)
	test -x $(1)/bin/python || $$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet -r $(2)
	rm -f $(1)/.installed-*
	touch $$@
endef

# Pixel-art quality against libimagequant (its venv: var/bench/imagequant-venv).
IQ_VENV := var/bench/imagequant-venv
IQ_STAMP := $(call peer_stamp,$(IQ_VENV),bench/imagequant-requirements.txt)
$(eval $(call peer_venv,$(IQ_VENV),bench/imagequant-requirements.txt))

bench-pixelart: install $(IQ_STAMP)
	$(PY) -m filters.benchmark_pixelart

bench-workers: install
	$(PY) -m workers.benchmark

# Pixelfleet (as `make run` starts it) against thumbor, end to end; thumbor goes into its own
# venv (var/bench/thumbor-venv). ARGS='--json out.json' etc.
THUMBOR_VENV  := var/bench/thumbor-venv
THUMBOR_STAMP := $(call peer_stamp,$(THUMBOR_VENV),bench/thumbor-requirements.txt)
$(eval $(call peer_venv,$(THUMBOR_VENV),bench/thumbor-requirements.txt))

bench-e2e: install $(THUMBOR_STAMP)
	$(PY) -m bench.e2e $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

# --- Operator commands against a running fleet (`make run` in another terminal) -------------
# They talk HTTP to PIXELFLEET_URL (default http://localhost:8000; PIXELFLEET_TOKEN when the
# API wants one). N tasks, SECONDS of sending, RATE per second, DEPTH tasks in flight;
# ARGS adds any other option of the script, e.g. ARGS='--json out.json'.
.PHONY: check metrics monitor stress rq-info simple-stress burst-stress continuous-stress \
        sustained-stress distributed-stress storage-stress
N       ?= 20
RATE    ?= 5
DEPTH   ?= 8
SECONDS ?= 30
ARGS    ?=
# The Redis `make run` started (it writes its URL, password included, to var/redis/url, mode 0600;
# a free port if 6379 was busy).
FLEET_REDIS_URL = $(or $(REDIS_URL),$(shell cat var/redis/url 2>/dev/null),redis://127.0.0.1:6379/0)

check: install
	$(PY) simple_monitoring/cli.py check $(ARGS)

metrics: install
	$(PY) simple_monitoring/cli.py metrics $(ARGS)

monitor: install
	$(PY) simple_monitoring/cli.py monitor $(ARGS)

stress: install
	$(PY) simple_monitoring/cli.py stress $(N) $(ARGS)

# The URL carries the Redis password: passed in RQ's own RQ_REDIS_URL, not echoed, not on ps.
rq-info: install
	@echo "$(VENV)/bin/rq info $(ARGS)   (RQ_REDIS_URL: the fleet's Redis, password not shown)"
	@RQ_REDIS_URL='$(FLEET_REDIS_URL)' $(VENV)/bin/rq info $(ARGS)

simple-stress: install
	$(PY) stress/simple_stress.py $(N) $(ARGS)

storage-stress: install
	$(PY) stress/storage_stress.py $(N) $(ARGS)

burst-stress: install
	$(PY) stress/burst_stress.py $(N) $(ARGS)

continuous-stress: install
	$(PY) stress/continuous_stress.py $(SECONDS) --rate $(RATE) $(ARGS)

sustained-stress: install
	$(PY) stress/sustained_stress.py --depth $(DEPTH) --seconds $(SECONDS) $(ARGS)

distributed-stress: install
	$(PY) stress/distributed_stress.py $(N) $(ARGS)
