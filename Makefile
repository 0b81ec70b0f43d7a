# Parley: every command the README names. Each target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
NODE_STAMP := node_modules/.installed
CDK := node_modules/.bin/cdk

# jsii (the bridge aws-cdk-lib runs on) warns about Node.js versions it has not
# been tested with or that are past end of life; the warning is noise here.
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_KNOWN_BROKEN_NODE_VERSION := 1
# Node.js runs the CDK CLI and, through jsii, aws-cdk-lib. aws-cdk-lib 2.275 (jsii 1.142)
# supports the Node.js releases not yet past end of life: 22 and 24. Older ones from 18
# still synthesize, so node-check warns about them in one line (jsii's own banner for
# them, many lines long, is silenced below) and fails only without Node.js or below 18.
NODE_SUPPORTED := 22 24
NODE_MINIMUM := 18
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,19,20,21,23
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_CLI_TELEMETRY := false
# The project's many Python processes (test workers, each local-stack environment, each
# parley CLI call in the end-to-end tests) reuse the bytecode Python caches in
# __pycache__ (git-ignored, and left out of the Lambda asset); an environment that
# turns that off (PYTHONDONTWRITEBYTECODE) would make each compile everything again.
unexport PYTHONDONTWRITEBYTECODE
# `make test` runs the tests on this many workers (pytest-xdist); tests/conftest.py
# keeps every test that shares a session's stack or CDK synthesis on one of them, and
# hands out the longest groups first (xdist would order them by their number of tests).
# Three on the two-core machine: with two, the tests kept only 1.4 cores busy (much of
# their time is spent waiting on local stacks, CLI processes and timers), and a run
# took 11 min 30 s; with three, 9 min 17 s at 1.6 cores (2026-12-07).
# PYTEST_WORKERS=0 runs them in this process, one after another.
PYTEST_WORKERS ?= 3

.PHONY: help serve test lint typecheck pytest synth bootstrap deploy diff destroy bench demo smoke soak fmt clean install node-check iam-policies iam-report

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt lambdas/requirements.txt client/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Parley needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs the requirements (about 30 s with an empty cache; pip took 77 s with a warm one),
	@# compiled to bytecode as pip would; pip stays in .venv for the tools that call it
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(PY) --quiet --compile-bytecode -r requirements-dev.txt
	@# the Lambda package is importable in the venv as it is in the Lambda asset
	@echo "$(CURDIR)/lambdas" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/parley-lambdas.pth"
	@touch $@

node-check:
	@major=$$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null); \
	if [ -z "$$major" ]; then \
	  echo "Node.js not found: the CDK needs Node.js 22 or 24 (https://nodejs.org, or: nvm install 22)" >&2; exit 1; \
	elif [ "$$major" -lt $(NODE_MINIMUM) ]; then \
	  echo "Node.js $$(node --version) is too old for the CDK: install Node.js 22 or 24 (https://nodejs.org, or: nvm install 22)" >&2; exit 1; \
	elif [[ " $(NODE_SUPPORTED) " != *" $$major "* ]]; then \
	  echo "warning: Node.js $$(node --version) is not supported by aws-cdk-lib (supported: Node.js 22 and 24); synth works, install 22 or 24 before deploying" >&2; \
	fi

$(NODE_STAMP): package.json package-lock.json | node-check
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP)  ## create .venv and install everything

serve: $(STAMP)  ## run the whole service on this machine, state kept in ~/.parley/local-state (ARGS=--fresh: start empty)
	$(PY) -m local $(ARGS)

test: lint typecheck pytest  ## ruff, mypy and every test (unit, infra, integration, e2e)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) node-check
	$(BIN)/pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder) $(PYTEST_ARGS)

fmt: $(STAMP)  ## format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

synth: node-check $(STAMP) $(NODE_STAMP)  ## synthesize the CDK app into cdk.out (offline, no Docker)
	$(CDK) synth --quiet --no-notices $(CDK_ARGS)

bootstrap: node-check $(STAMP) $(NODE_STAMP)  ## cdk bootstrap (once per AWS account and region)
	$(CDK) bootstrap --no-notices $(CDK_ARGS)

deploy: node-check $(STAMP) $(NODE_STAMP)  ## cdk deploy; endpoints land in cdk-outputs.json for the CLI
	$(CDK) deploy --no-notices --require-approval broadening --outputs-file cdk-outputs.json $(CDK_ARGS)

diff: node-check $(STAMP) $(NODE_STAMP)  ## cdk diff against the deployed stack
	$(CDK) diff --no-notices $(CDK_ARGS)

destroy: node-check $(STAMP) $(NODE_STAMP)  ## cdk destroy
	$(CDK) destroy --no-notices $(CDK_ARGS)

iam-policies: $(STAMP)  ## after changing grants: write local/iam/policies.json (what the local stack enforces)
	$(PY) -m local.iam

iam-report: $(STAMP)  ## the integration and e2e suites, then every granted permission no call used
	PARLEY_IAM_REPORT=1 $(BIN)/pytest -q -m 'not soak' tests/integration tests/e2e

bench: $(STAMP)  ## run every benchmark and print the figures
	$(PY) -m bench

demo: $(STAMP)  ## a scripted two-person conversation on the local stack
	$(PY) -m parley.demo

# After `make deploy`: the stack in cdk-outputs.json (else the local stack of `make serve`).
# SMOKE_ARGS="--local", "--outputs FILE", "--numbers +12065550100,+12065550101", "--timeout 60"
smoke: $(STAMP)  ## prove a deployment works
	$(PY) -m parley.smoke $(SMOKE_ARGS)

soak: $(STAMP)  ## the reliability suites at full size
	# -s: the chaos run prints a progress line every 30 s
	PARLEY_SOAK=1 $(BIN)/pytest -q -s -m soak tests

clean:  ## remove build output (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
