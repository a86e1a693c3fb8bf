# Mend: `make run` sets up and starts the bot; `make test` sets up and runs every test.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONPATH := $(CURDIR)

# Rasa 3.6 supports Python 3.8-3.10: use python3.10 from PATH or pyenv.
PYTHON310 ?= $(shell for c in python3.10 "$$(pyenv root 2>/dev/null)/versions/3.10.13/bin/python3.10" \
	"$$HOME/.pyenv/versions/3.10.13/bin/python3.10"; do \
	"$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { command -v "$$c" || echo "$$c"; } && break; done)

.PHONY: setup run run-scaled test train bench browser clean load-test

$(VENV)/.installed: requirements.lock requirements-nodeps.lock
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (install it with pyenv: pyenv install 3.10.13)"; exit 1; }
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.lock
	@touch $@

setup: $(VENV)/.installed
	$(PY) -m bot setup

run: $(VENV)/.installed
	$(PY) -m bot run

# The scaled layout: 2 action servers, 2 Rasa servers, 2 gateways (8080, 8081) on PostgreSQL, Redis and
# RabbitMQ (MEND_DATABASE_URL, MEND_REDIS_URL, MEND_AMQP_URL; defaults: the ones on 127.0.0.1). README: Scaling out.
run-scaled: $(VENV)/.installed
	$(PY) -m bot run --replicas 2

train: $(VENV)/.installed
	$(PY) -m bot train

# Browser tests drive Debian's Chromium (never a downloaded browser).
browser:
	@test -x /usr/bin/chromium || { echo "mend: installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; }

test: setup browser
	$(PY) -m pytest tests -p no:cacheprovider

bench: setup
	$(PY) bench/latency.py
	$(PY) bench/gateway.py
	$(PY) bench/replay.py
	$(PY) bench/nlu_cost.py

clean:
	rm -rf var models/mend.tar.gz models/mend.fingerprint .rasa

# Load test (bench/load/): Locust in its own virtualenv, never in requirements.lock (its deps clash with Rasa's).
LOAD_VENV := .venv-load
$(LOAD_VENV)/.installed: bench/load/requirements.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (install it with pyenv: pyenv install 3.10.13)"; exit 1; }
	@test -x $(LOAD_VENV)/bin/python || $(PYTHON310) -m venv $(LOAD_VENV)
	$(LOAD_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/load/requirements.txt
	@touch $@

load-test: setup $(LOAD_VENV)/.installed
	$(PY) bench/load/run.py --locust $(LOAD_VENV)/bin/locust $(LOAD_ARGS)
