# Aether: the embedded stack, tests, linters and benchmarks.
# Everything binds to 127.0.0.1; `make up` needs no Docker.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv up down status demo test fuzz lint bench fixtures clean

help:
	@echo "make demo     start the stack and deploy examples/hello-express with the CLI"
	@echo "make up       start the embedded stack (records, SeaweedFS, cluster, chalice local, relay) on 127.0.0.1"
	@echo "make down     stop everything 'make up' started"
	@echo "make status   show what is running"
	@echo "make test     run the whole test suite (the API fuzzer included)"
	@echo "make fuzz     the API fuzzer alone, with more examples per operation"
	@echo "make lint     ruff and mypy"
	@echo "make bench    run the benchmarks under bench/"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt cli/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

up: venv
	$(BIN)/python -m infra.local up

demo: up fixtures
	bash infra/local/demo.sh

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m infra.local down; fi

status: venv
	$(BIN)/python -m infra.local status

# Every project the tests build (the example and tests/fixtures/projects), built once
# by the CLI itself so that its staging install (and npm, pnpm and Yarn caches) are warm:
# tests copy a project with its .aether/ and install nothing.
EXAMPLE := examples/hello-express
FIXTURE_APPS := $(EXAMPLE) $(addprefix tests/fixtures/projects/,\
	ts-express esbuild-bundle pnpm-app yarn-classic yarn-berry native-addon fixed-port \
	npm-workspaces/apps/api pnpm-workspaces/apps/api)
FIXTURE_STAMPS := $(addsuffix /.aether/stamps/install.json,$(FIXTURE_APPS))
OIDC_PROVIDER := infra/local/oidc-provider/node_modules/oidc-provider/package.json
fixtures: $(FIXTURE_STAMPS) $(OIDC_PROVIDER)

# The embedded stack's OpenID provider, from its lockfile (`make up` does this too, once).
$(OIDC_PROVIDER): infra/local/oidc-provider/package-lock.json
	npm ci --prefix infra/local/oidc-provider --no-audit --no-fund --ignore-scripts
	touch $@

%/.aether/stamps/install.json: %/package.json $(STAMP)
	$(BIN)/aether --log-format text --log-level warn deploy --pack-only --no-sbom --path $*

TEST_WORKERS ?= 2

test: venv fixtures
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# tests/api/test_fuzz.py runs in `make test` with 20 examples per operation; this explores more.
fuzz: venv
	AETHER_FUZZ_EXAMPLES=$${AETHER_FUZZ_EXAMPLES:-100} $(BIN)/pytest -q tests/api/test_fuzz.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv fixtures
	$(BIN)/python bench/verify_bench.py
	$(BIN)/python bench/pack_bench.py
	$(BIN)/python bench/cli_startup_bench.py
	$(BIN)/python bench/records_bench.py
	$(BIN)/python bench/dashboard_bench.py
	$(BIN)/python bench/deploy_bench.py
	$(BIN)/python bench/kinds_bench.py
	$(BIN)/python bench/releases_bench.py
	$(BIN)/python bench/jobs_bench.py
	$(BIN)/python bench/hooks_bench.py
	$(BIN)/python bench/apps_bench.py
	$(BIN)/python bench/kubesim_bench.py

clean: down
	rm -rf .aether .pytest_cache .mypy_cache .ruff_cache
