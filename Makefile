# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and reinstalls when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint browser bench dist clean

# `make dist`: a wheelhouse a Raspberry Pi installs offline, without a compiler, with the
# systemd unit beside the wheels
# (docs/install-gateway.md). Raspberry Pi OS 12 has Python 3.11; for 13: WHEEL_PYTHON=3.13.
WHEELHOUSE ?= dist/wheelhouse
WHEEL_PYTHON ?= 3.11
WHEEL_PLATFORMS ?= manylinux2014_aarch64 manylinux_2_28_aarch64
# Agent dependencies published as source only (pure Python): built into wheels here.
SOURCE_ONLY ?= 'chirpstack-api>=4.20,<5'

# The browser tests drive the distribution's Chromium (never a browser download of
# Playwright's own). Installed when missing, as root or through passwordless sudo; when it
# cannot be, the browser tests skip and say why.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m simulators.demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

browser:
	@[ -x $(CHROMIUM) ] || { command -v apt-get >/dev/null && \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; } || \
	  echo "chromium could not be installed: the browser tests will skip"

test: lint browser
	$(BIN)/pytest

bench: $(BIN)/.installed
	for script in bench/bench_*.py; do $(BIN)/python -m bench.$$(basename $$script .py) || exit 1; done

dist: $(BIN)/.installed
	rm -rf $(WHEELHOUSE)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) . $(SOURCE_ONLY)
	$(BIN)/python -m pip download --quiet --only-binary=:all: --implementation cp \
		--python-version $(WHEEL_PYTHON) $(addprefix --platform ,$(WHEEL_PLATFORMS)) \
		--find-links $(WHEELHOUSE) --dest $(WHEELHOUSE) $(WHEELHOUSE)/ponton-*.whl
	cp packaging/systemd/ponton-agent.service $(WHEELHOUSE)/
	@echo "wheelhouse: $(WHEELHOUSE) ($$(ls $(WHEELHOUSE) | wc -l) wheels)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-data
