# Set-up and entry points. Needs only Python 3 (>= 3.10) on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

.PHONY: install run test ui bench clean

# Headless Chromium for the browser test (test_walkthrough_ui.py, which skips without it): Debian's package, when
# it is missing and this is root with apt-get.
install: $(STAMP)
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || echo "note: no /usr/bin/chromium (needs root and apt-get): the browser test will be skipped"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Ingest the bundled sample data and print a summary per day / visit.
# The sample visit ib4606 observes a target the offline MAST table does not know: allowed here, explicitly.
# Exit status 1 of jwst-cal-ingest means "ingested, but an L3 product stayed unmatched": reported, not an error here.
run: install
	$(BIN)/jwst-cal-ingest -i data/jwst_cal/inbox -o data/jwst_cal/out -s || test $$? -eq 1
	$(BIN)/hst-svm-ingest -i data/hst_svm/inbox -o data/hst_svm/out --allow-unresolved-targets

test: install
	$(BIN)/python -m pytest -n 2

# The Dagster UI (webserver + daemon) on the sample data; the partitions span the sample days, so the backfill
# dialog offers them all. Writers of the output database run one at a time (deploy/dagster.yaml).
ui: install
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster instance concurrency set jwst_cal_store 1
	JWST_CAL_INBOX=data/jwst_cal/inbox JWST_CAL_OUTPUT=data/jwst_cal/out JWST_CAL_SAVE_L1=1 \
	JWST_CAL_FIRST_DAY=2025-03-01 JWST_CAL_LAST_DAY=2025-03-07 HST_SVM_ALLOW_UNRESOLVED=1 \
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python benchmarks/bench_jwst_cal.py
	$(BIN)/python benchmarks/bench_year.py
	$(BIN)/python benchmarks/bench_cli_vs_spacekit.py

clean:
	rm -rf data/jwst_cal/out data/jwst_cal/storage data/hst_svm/out .dagster_home
