# Everything a user or CI runs. Each target installs what it is missing
# (virtual environment, Docker engine, lab images) and is safe to run again.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= python3
BIN         := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# Scenarios in lanes that run side by side (molecule/lanes.sh); each lane runs
# its scenarios in order. `make molecule LANES=docker` runs one.
LANES       ?= "docker models serving gateway" "default"
# `make test` runs lint, the build and the unit tests in those lanes too, so
# they take no time of their own: the default scenario's lane is the shorter.
TEST_LANES  ?= "make:lint make:build docker models serving gateway" "make:unit default"
PLATFORMS   ?= debian12 debian13
MOLECULE    := molecule -c molecule/config.yml

.PHONY: help demo test lint unit molecule build clean engine images venv fresh-check

help:
	@echo "make demo      bring up the lab fleet and run site.yml against it"
	@echo "make test      everything CI runs: lint, unit tests, collection build, Molecule scenarios"
	@echo "make lint | unit | molecule | build | clean"
	@echo "make fresh-check  remove what the project installs on this machine, then demo + test in a new clone"

$(BIN)/.installed: requirements.txt requirements-nodeps.txt tests/serving_double/tensorflow_protos.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	# TensorFlow's generated protos (TensorProto, Example, ...), which the
	# serving APIs import, without TensorFlow itself.
	PYTHON=$(BIN)/python $(BIN)/python tests/serving_double/tensorflow_protos.py \
	  "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
	touch $@

venv: $(BIN)/.installed

engine:
	lab/engine.sh

images: engine venv
	for p in $(PLATFORMS); do lab/build-image.sh $$p; done
	PYTHON=$(abspath $(BIN))/python lab/serving-image.sh

lint: venv
	yamllint --strict .
	ansible-lint
	# The example inventories' declarations pass the preflight (it contacts no
	# host; their model sources and their vault are not on this machine).
	for i in staging production; do \
	  ansible-playbook playbooks/preflight.yml -i inventories/$$i -e tfserving_check_sources=false \
	    -e '{"vault_gateway_api_keys": []}' || exit 1; done

unit: venv engine
	pytest -q tests/unit

build: venv
	rm -f mlserve-tfserving-*.tar.gz
	ansible-galaxy collection build --force .
	@if tar -tzf mlserve-tfserving-*.tar.gz | grep -E '^(tests|molecule|lab|\.ci)/'; then \
	  echo "test material in the collection tarball" >&2; exit 1; fi

molecule: venv images
	rm -rf .cache/molecule-logs
	molecule/lanes.sh $(LANES)

test:
	$(MAKE) molecule LANES='$(TEST_LANES)'

# The demo's hosts are Debian 12: the Debian 13 image is for the docker scenario.
demo: venv
	$(MAKE) images PLATFORMS=debian12
	ansible-playbook lab/up.yml
	ansible-playbook site.yml -i inventories/lab
	ansible-playbook playbooks/routes.yml -i inventories/lab
	ansible-playbook playbooks/status.yml -i inventories/lab

# The README's two commands on a machine that has only what they install
# (issue 24). It removes the lab's Debian packages and the engine's data.
fresh-check:
	lab/fresh-machine.sh --yes

clean: venv
	-ansible-playbook lab/down.yml
	-for s in $$(ls molecule/*/molecule.yml | cut -d/ -f2); do $(MOLECULE) destroy -s $$s; done
	rm -f mlserve-tfserving-*.tar.gz
