# pytest-teach: the README's two commands.
#   make demo   set up if needed, run the bundled scenario suites with collection on, print stats
#   make test   set up if needed, build the docs (warnings as errors), run the project's test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TEACH := $(VENV)/bin/teach
STAMP := $(VENV)/.installed
DEMO_DB ?= .teach/demo.db
DEMO_MODEL ?= scripted:noisy-0.3
DEMO_REPORT ?= reports/teach-report.html
# the files with tests that open their store through the `collect` or `store_target` fixtures:
# `make test` runs those tests a second time with TEACH_TEST_STORE=postgresql (the conftest
# deselects the others there, which would only repeat the SQLite pass)
STORE_TESTS := tests/test_store.py tests/test_plugin.py tests/test_plugin_traps.py \
    tests/test_concurrency.py tests/test_graded.py tests/test_pipeline.py

.PHONY: setup browser postgres demo test lint docs bench clean

setup: $(STAMP) browser postgres

# Debian's Chromium for the browser tests and the report check (a notice, not an error, when
# it can't be installed: those tests skip)
browser:
	@bash scripts/ensure-chromium.sh

# Debian's PostgreSQL server binaries for the team-store tests, which start a throwaway server
# of their own (a notice, not an error, when they can't be installed: those tests skip)
postgres:
	@bash scripts/ensure-postgres.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,train,postgres]'
	@touch $@

demo: setup
	@mkdir -p .teach reports
	@echo "== tool_selection + browser under $(DEMO_MODEL): failures are the interventions we record"
	$(PY) -m pytest scenarios/tool_selection scenarios/browser -q -p no:cacheprovider -n 2 \
	    --tb=no -rN --collect-training-data --teach-db $(DEMO_DB) --model $(DEMO_MODEL) \
	    || test $$? -eq 1
	@echo "== stories: scripted:accessible against scripted:div-soup, both recorded (axe-core + keyboard checks)"
	$(PY) -m pytest scenarios/stories -q -p no:cacheprovider --tb=no -rN --collect-training-data \
	    --teach-db $(DEMO_DB) --ab scripted:accessible,scripted:div-soup || test $$? -eq 1
	$(TEACH) stats --db $(DEMO_DB) --top 5
	@echo "== A/B: $(DEMO_MODEL) (A, baseline) against scripted:oracle (B, candidate), with the report"
	$(PY) -m pytest scenarios/tool_selection scenarios/browser -q -p no:cacheprovider -n 2 \
	    --tb=no -rN --collect-training-data --teach-db $(DEMO_DB) \
	    --ab $(DEMO_MODEL),scripted:oracle --ab-gate --teach-report $(DEMO_REPORT) \
	    || test $$? -eq 1
	@echo "next: $(TEACH) export --db $(DEMO_DB) --format openai -o reports/demo-sft.jsonl"
	@echo "      $(TEACH) export --db $(DEMO_DB) --format stories -o reports/demo-stories"
	@echo "      open $(DEMO_REPORT)"

test: setup docs
	@echo "== the package's layers (import-linter contracts in pyproject.toml)"
	$(VENV)/bin/lint-imports
	@echo "== e2e_trainer with no trainer: a clean skip with the reason"
	@mkdir -p .teach
	env -u TEACH_TRAINER_URL $(PY) -m pytest tests/test_e2e_trainer.py -q -p no:cacheprovider \
	    -m e2e_trainer -rs | tee .teach/e2e-skip.log; \
	    test $${PIPESTATUS[0]} -eq 0 && grep -q "SKIPPED.*no --trainer-url given" .teach/e2e-skip.log
	@echo "== e2e_trainer: a real SFT step on a trainer that --trainer-url auto starts and stops"
	$(PY) -m pytest tests/test_e2e_trainer.py -q -p no:cacheprovider -m e2e_trainer --trainer-url auto
	@echo "== the test suite"
	$(PY) -m pytest tests -q -n 2 -m "not e2e_trainer"
	@echo "== the store-facing tests again, on a throwaway PostgreSQL server"
	TEACH_TEST_STORE=postgresql $(PY) -m pytest $(STORE_TESTS) -q -n 2 -m "not e2e_trainer"

lint: setup
	$(VENV)/bin/ruff check src tests scenarios benchmarks
	$(VENV)/bin/ruff format --check src tests scenarios benchmarks
	$(VENV)/bin/lint-imports

# the manual (docs/), warnings as errors; the CLI reference is generated from the click commands,
# so -E rereads every page (an incremental build would keep a stale reference)
docs: setup
	$(VENV)/bin/sphinx-build -q -E -W --keep-going -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

bench: setup
	$(PY) benchmarks/collection_overhead.py

clean:
	rm -rf $(VENV) .teach build *.egg-info
