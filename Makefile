# flowbook: every set-up step the README's two commands need, from a bare clone.
#   make demo   set up, then run the offline demo (fake upstream + real SDKs through the proxy)
#   make test   set up (incl. widget bundle, Debian chromium and golang), then run the whole test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
BUNDLE := flowbook/static/intercept_panel.js
WIDGET_SRC := $(shell find widgets/src widgets/node -type f 2>/dev/null) widgets/build.mjs widgets/package-lock.json

.PHONY: setup demo lab test lint bench clean chromium golang

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "flowbook needs Python >= 3.12, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install --quiet -e ".[test]"
	touch $@

widgets/node_modules/.package-lock.json: widgets/package-lock.json
	cd widgets && npm ci --no-audit --no-fund --loglevel=error

# Official npm SDKs (openai) the integration tests run through `flowbook run`.
tests/node/node_modules/.package-lock.json: tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

$(BUNDLE): widgets/node_modules/.package-lock.json $(WIDGET_SRC)
	cd widgets && npm run --silent build

setup: $(VENV)/.installed $(BUNDLE)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Go compiles and runs the code fb.generate_code(..., "go") writes (tests/integration/test_codegen_run.py).
golang:
	@command -v go >/dev/null 2>&1 || { \
	  echo "installing Debian's golang for the code generation tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang >/dev/null; }

demo: setup
	$(VENV)/bin/flowbook demo

lab: setup
	$(VENV)/bin/flowbook lab

lint: setup
	$(VENV)/bin/ruff check flowbook tests bench
	$(VENV)/bin/mypy

test: setup chromium golang lint tests/node/node_modules/.package-lock.json
	$(PY) -m pytest -p no:cacheprovider tests --nbval-lax --nbval-current-env notebooks

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) widgets/node_modules tests/node/node_modules flowbook/static/*.js flowbook/static/*.css flowbook/static/node
