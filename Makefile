# kubegate — `make demo` runs it on a local control plane, `make test` runs every check CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv control-plane dex crds lint typecheck unit integration test demo demo-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing kubegate with every extra and its test and lint tools"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# Editable: operator/ goes on the path as it is, so the local control plane (kubegate.devcluster), which
	@# the wheel leaves out, still imports from the checkout.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test,lint]'
	touch $@

venv: $(STAMP) ## create the virtualenv with kubegate, every extra and the tools

control-plane: ## build etcd, kube-apiserver, kube-controller-manager and kubectl into ~/.cache/kubegate (once per version)
	hack/build-control-plane.sh

dex: ## build Dex, the OIDC provider of the tests, into ~/.cache/kubegate (once per version)
	hack/build-dex.sh

crds: venv ## regenerate crds/ from the pydantic models
	$(BIN)/kubegate crds --output-dir crds

lint: venv ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy --strict
	$(BIN)/mypy

unit: venv ## unit tests only (no control plane needed)
	$(BIN)/pytest -m 'not integration'

integration: venv control-plane dex ## integration tests on a real local control plane and a real Dex
	$(BIN)/pytest -m integration

test: venv control-plane dex lint typecheck ## everything CI runs: build, lint, types, all tests
	$(BIN)/pytest

demo: venv control-plane ## start the dev cluster and show kubegate working on it
	hack/demo.sh

demo-down: venv ## stop the demo (operator, server and dev cluster)
	hack/demo.sh down

clean: ## remove the virtualenv and caches (not the control-plane build)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
