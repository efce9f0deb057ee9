# The two commands a new user needs: `make run` and `make test`.
# Both build the virtual environment first when it is missing or out of date.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser run test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "redflags needs Python 3.11 or newer; found " + sys.version.split()[0] + " (set PYTHON=python3.X)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The report's test opens the HTML in a real headless browser (Debian's chromium).
browser:
	@bash scripts/ensure-chromium.sh

run: setup
	$(BIN)/redflags run

test: setup browser
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check pipelines tests benchmarks
	$(BIN)/ruff format --check pipelines tests benchmarks

clean:
	rm -rf $(VENV) data/warehouse.duckdb data/warehouse.duckdb.wal data/warehouse.published.duckdb data/docs data/report.html data/exports .pytest_cache
