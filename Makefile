# MCP Mesh Ops. The two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
AGENTS ?= 3
# Debian releases the lab's agents take in turn (lb1 runs the first), e.g. bookworm,trixie.
AGENT_DISTROS ?= $(or $(MESH_LAB_AGENT_DISTROS),bookworm)
# DATABASE=1 adds db1: PostgreSQL and a second registry replica (default: SQLite on lb1).
DATABASE ?= $(or $(MESH_LAB_DATABASE),0)
# Which lab the lab-* targets and demo act on (inventories/lab/hosts.yml for "mesh").
LAB ?= $(or $(MESH_LAB_NAME),mesh)
# What the controller needs from Debian: the lab (nspawn, debootstrap, iproute2, ssh),
# the load balancer and load generator the tests compare against, and age (opening a backup by
# hand, as the restore runbook does), and PostgreSQL 15, which the registry's integration tests
# start on loopback as a throwaway server of their own; buildah, podman and runc for the agent's
# image (`make image`) and the test that runs it (crun refuses the machine's hybrid cgroups).
APT_PACKAGES := systemd-container debootstrap iproute2 openssh-client haproxy wrk rsync age postgresql-15 dpkg-dev buildah podman runc chromium
PYTEST_ARGS ?=
# promtool (the alert rules' unit tests) from Debian's prometheus package, unpacked alone into
# .cache: installing the package would start a Prometheus daemon on the controller (its postinst
# runs invoke-rc.d, which starts /etc/init.d/prometheus where PID 1 is not systemd).
PROMTOOL := .cache/promtool/promtool

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help deps system-deps promtool venv lint dist collection image test unit integration lab-test lab-up lab-down lab-status demo bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

system-deps: ## install the Debian packages the controller needs (as root), only when missing
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The runtime (the hosts' wheel) and the controller's own package, controller/ (mesh-ops, the
# report renderers; never shipped to the hosts), both editable.
$(VENV)/.installed: pyproject.toml controller/pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./controller
	touch $@

venv: $(VENV)/.installed ## create .venv with the runtime, mesh-ops and the dev tools

$(PROMTOOL):
	@rm -rf .cache/promtool/download && mkdir -p .cache/promtool/download && chmod 0755 .cache/promtool/download
	cd .cache/promtool/download && { apt-get download -q prometheus || { apt-get update -qq && apt-get download -q prometheus; }; }
	dpkg-deb --fsys-tarfile .cache/promtool/download/prometheus_*.deb | tar -x -O ./usr/bin/promtool > $@.new
	chmod 0755 $@.new && mv $@.new $@ && rm -rf .cache/promtool/download
	$@ --version | head -1

promtool: $(PROMTOOL) ## unpack promtool from Debian's prometheus package into .cache (no daemon)

deps: system-deps venv promtool

lint: venv ## ruff (lint + format), mypy on runtime/, yamllint, ansible-lint (production, the collection's metadata too)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	@# ANSIBLE_HOME: ansible-lint puts <ANSIBLE_HOME>/collections first in the collections path; the
	@# user's ~/.ansible/collections may hold another mcp_mesh.ops that would hide this checkout's.
	ANSIBLE_HOME=$(CURDIR)/.ansible $(BIN)/ansible-lint --offline --profile production playbooks roles molecule galaxy.yml meta

dist: venv ## build the runtime's sdist and wheel into dist/ (python -m build) and check them (twine check)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

# The collection mcp_mesh.ops (galaxy.yml): roles, playbooks, plugins and the runtime's source
# the roles build the hosts' wheelhouse from. tests/unit/test_collection.py checks the tarball,
# tests/integration/test_collection_sanity.py runs ansible-test sanity on it installed, and the lab
# suite deploys its fleet from it (README "Installing the collection").
collection: venv ## build the collection mcp_mesh.ops into build/collection (ansible-galaxy collection build)
	rm -rf build/collection
	$(BIN)/ansible-galaxy collection build --output-path build/collection .

image: deps ## build the agent's image of this release offline with buildah (IMAGE_TAG, default localhost/mcp-mesh-sdk:<version>)
	$(PY) -m mesh_ops.image build $(if $(IMAGE_TAG),--tag $(IMAGE_TAG))

unit: venv ## unit tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test: deps lint dist collection ## install what is needed, lint, twine-check the dist, build the collection, run every test (the lab comes up and goes down)
	$(BIN)/pytest $(PYTEST_ARGS)

lab-up: deps ## boot the lab (AGENTS=N agent hosts, default 3; AGENT_DISTROS=bookworm,trixie; DATABASE=1; LAB=name, default mesh) and write its inventory
	$(PY) -m lab up --name $(LAB) --agents $(AGENTS) --agent-distros $(AGENT_DISTROS) $(if $(filter 1,$(DATABASE)),--database,--no-database)

lab-down: venv ## stop the lab (LAB=name) and remove every piece of it
	$(PY) -m lab down --name $(LAB)

lab-status: venv ## show the lab's hosts (LAB=name); fails unless all are up
	$(PY) -m lab status --name $(LAB)

demo: lab-up ## bring up the lab and deploy the fleet
	$(PY) -m lab demo --name $(LAB)

bench: deps ## run every benchmark; results in bench/results, summary in docs/performance.md
	$(PY) -m bench

clean: ## remove build output (not the lab, not the base image cache)
	rm -rf build dist runtime/*.egg-info controller/*.egg-info .mypy_cache .ruff_cache .pytest_cache
