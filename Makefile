# crm-erp-sync — `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CLI    := $(BIN)/crm-erp-sync

.PHONY: help demo run run-cdc test soak state-soak lint gate format down status venv lock bench promtool chromium postgres kustomize

help:            ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

venv: $(BIN)/.installed  ## create .venv and install the service with its dev tools, exactly as locked

lock: venv       ## re-resolve requirements.lock and requirements-dev.lock from pyproject.toml (uv)
	$(BIN)/uv pip compile -q pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements-dev.lock

demo: venv       ## the whole lifecycle in one command: platform, worker, simulated CRM and ERP for a minute, summary
	$(CLI) demo

run: venv        ## the main job: local Kafka + registry up, topics and schemas applied, worker in the foreground
	$(CLI) platform up
	$(CLI) topics apply
	$(CLI) schemas register
	$(CLI) worker

run-cdc: venv postgres  ## `make run` with a real CRM: PostgreSQL + Kafka Connect running Debezium into the CDC topics
	$(CLI) platform up --with-cdc
	$(CLI) topics apply
	$(CLI) schemas register
	$(CLI) worker

test: venv promtool chromium postgres kustomize  ## the whole suite (brings the local platform up if it is not, and down again if it did)
	$(BIN)/pytest

soak: venv postgres  ## the kill -9 / restart test 20 times in a row (make test runs it 3 times)
	CRM_ERP_RESTART_RUNS=20 $(BIN)/pytest tests/integration/test_opportunity_to_order.py -k sigkill

state-soak: venv  ## 50 000 deals settle with a 20 s retention: worker RSS and table keys at 10k/25k/50k (platform must be up)
	$(BIN)/crm-erp-sync soak

promtool:        ## promtool (Debian's prometheus package) checks and unit-tests the alert rules
	@command -v promtool >/dev/null || { echo "installing promtool (Debian package prometheus)"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q --no-install-recommends prometheus >/dev/null; }

kustomize:       ## renders deploy/kubernetes for its test: kubectl's built-in kustomize, else kustomize built from the Go module proxy
	@command -v kustomize >/dev/null || command -v kubectl >/dev/null || [ -x $(BIN)/kustomize ] || { \
	  echo "installing kustomize (Go module sigs.k8s.io/kustomize/kustomize/v5)"; \
	  GOBIN=$(abspath $(BIN)) go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1; }

postgres:        ## PostgreSQL's server programs (Debian's postgresql package): the CRM database Debezium reads
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing PostgreSQL (Debian package postgresql)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -q --no-install-recommends postgresql >/dev/null; }; }

chromium:        ## headless Chromium (Debian's chromium package) renders the worker's /ops page in the tests
	@command -v chromium >/dev/null || { echo "installing chromium (Debian package chromium)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { $$SUDO apt-get update -q >/dev/null && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -q --no-install-recommends chromium >/dev/null; }; }

lint: venv       ## ruff lint and format check, contract house rules
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(CLI) schemas lint

gate: venv       ## every contract changed since the merge base stays compatible with its previous version
	$(CLI) schemas gate

format: venv     ## ruff format + autofix
	$(BIN)/ruff format app tests
	$(BIN)/ruff check --fix app tests

bench: venv      ## benchmark: I/O and Python ceilings vs the service (1 and 2 workers), latency; writes out/bench.json
	$(CLI) platform up
	$(CLI) bench

status: venv     ## what of the local platform is running
	$(CLI) platform status

down: venv       ## stop the local platform (exactly the processes `platform up` started)
	$(CLI) platform down
