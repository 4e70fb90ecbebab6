# Midstage - the usual targets. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SAMENV := .venv-sam
BROWSER := tests/browser
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY = 0

.PHONY: help install run test test-unit test-integration test-e2e test-browser test-shifted test-fuzz test-faults-day lint format typecheck \
        template-lint invoke bench build clean

help:
	@echo "make install          create .venv and install Midstage with its dev tools (make test does it too)"
	@echo "make run              start the local cloud with a demo source (Ctrl-C stops it; ARGS=--manual-clock ...)"
	@echo "make test             install what is needed and run every test tier (unit, integration, e2e, browser, fuzz)"
	@echo "make test-unit        the unit tier;  make test-integration: the integration tier;  make test-e2e: e2e"
	@echo "make test-browser     the real SDKs in headless Chromium, Node and Python (needs chromium and npm)"
	@echo "make test-fuzz        schemathesis over docs/openapi.yaml against a local cloud (FUZZ_MAX_EXAMPLES, FUZZ_SEED)"
	@echo "make test-faults-day  the optional day under injected faults (about 20 minutes; MIDSTAGE_E2E_FAULT_PEOPLE)"
	@echo "make test-shifted     the unit and integration tiers with the clock 400 days ahead (SHIFT=-400d: back)"
	@echo "make invoke FN=collect EVENT=track   run one function with events/<FN>/<EVENT>.json"
	@echo "make lint             ruff + format check + mypy;  make typecheck: mypy only;  make format: fix style"
	@echo "make template-lint    sam validate --lint (installs the SAM CLI in .venv-sam)"
	@echo "make build            sam build (needs python3.12 on PATH)"
	@echo "make bench            run the benchmarks in bench/"
	@echo "make clean            remove the virtualenvs and caches"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# gbstats 0.8.0, the reference the experiments engine must equal (tests only). Its metadata pins
	# numpy<2 and pandas<2, which only its pandas runner (gbstats.gbstats) needs; the tests import
	# its statistics and test modules directly, which work with numpy 2, so it goes in without deps.
	$(BIN)/pip install --quiet --no-deps 'gbstats==0.8.0'
	touch $@

$(SAMENV)/.installed:
	$(PYTHON) -m venv $(SAMENV)
	$(SAMENV)/bin/pip install --quiet --upgrade pip
	$(SAMENV)/bin/pip install --quiet aws-sam-cli
	touch $@

run: install
	$(BIN)/python -m infra.localcloud run $(ARGS)

# Each tier runs in its own process: the e2e local cloud and the integration tier's mock_aws
# would otherwise share moto's in-process state.
test: install $(BROWSER)/node_modules/.installed
	$(BIN)/python -m pytest tests/unit -q $(ARGS)
	$(BIN)/python -m pytest tests/integration -q $(ARGS)
	$(BIN)/python -m pytest tests/e2e -q -rs $(ARGS)
	$(BIN)/python -m pytest tests/browser -q -rs $(ARGS)
	$(BIN)/python -m pytest tests/fuzz -q -rs $(ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit -q $(ARGS)

test-integration: install
	$(BIN)/python -m pytest tests/integration -q $(ARGS)

test-e2e: install
	$(BIN)/python -m pytest tests/e2e -q -rs $(ARGS)

# Skips (with the reason) where Chromium, Node or the npm packages are missing; CI sets
# MIDSTAGE_REQUIRE_BROWSER_TIER=1 to make that a failure.
test-browser: install $(BROWSER)/node_modules/.installed
	$(BIN)/python -m pytest tests/browser -q -rs $(ARGS)

# The browser tier's SDKs, pinned by its package-lock.json, when npm is there.
$(BROWSER)/node_modules/.installed: $(BROWSER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(BROWSER) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm is not installed: the browser tier's browser and Node tests will skip"; fi

# The unit and integration tiers again with the process clock 400 days ahead (SHIFT=-400d for the
# past): a test that passes only until some date fails now, not on that date.
SHIFT ?= 400d
test-shifted: install
	MIDSTAGE_TEST_CLOCK_SHIFT=$(SHIFT) $(BIN)/python -m pytest tests/unit -q $(ARGS)
	MIDSTAGE_TEST_CLOCK_SHIFT=$(SHIFT) $(BIN)/python -m pytest tests/integration -q $(ARGS)

# schemathesis over docs/openapi.yaml against a local cloud (FUZZ_MAX_EXAMPLES, FUZZ_SEED).
test-fuzz: install
	$(BIN)/python -m pytest tests/fuzz -q -rs $(ARGS)

# A day under injected faults (optional, about 20 minutes at 50 people): tests/e2e/test_faults_day.py.
test-faults-day: install
	MIDSTAGE_FAULT_DAY=1 $(BIN)/python -m pytest tests/e2e/test_faults_day.py -q -rs -p no:randomly $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared/midstage infra
	@for fn in functions/*/handler.py; do $(BIN)/mypy $$fn || exit 1; done

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy shared/midstage infra
	@for fn in functions/*/handler.py; do $(BIN)/mypy $$fn || exit 1; done

template-lint: $(SAMENV)/.installed
	$(SAMENV)/bin/sam validate --lint --template template.yaml

# Docker-free `sam local invoke`: one function, one sample event, against the local cloud.
invoke: install
	@test -n "$(FN)" || { echo "make invoke FN=<function> EVENT=<case>; functions with samples: $$(ls events)" | tr '\n' ' '; echo; exit 2; }
	$(BIN)/python -m infra.localcloud invoke $(FN) --event events/$(FN)/$(EVENT).json

bench: install
	$(BIN)/python -m bench

# Needs python3.12 on PATH (the Lambda runtime); elsewhere use `sam build --use-container`.
build: $(SAMENV)/.installed
	$(SAMENV)/bin/sam build --template template.yaml

clean:
	rm -rf $(VENV) $(SAMENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
