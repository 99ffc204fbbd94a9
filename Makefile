# Newcomers need two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HM := $(VENV)/bin/health-monitor
DEMO_DIR ?= .health-monitor

.PHONY: install demo test test-fast lint docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	@java -version >/dev/null 2>&1 || { echo "Java 17 or 21 is required: apt-get install openjdk-17-jre-headless (or brew install openjdk@17)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,local]"
	touch $@

demo: install
	$(PY) -m health_monitor.demo --data-dir $(DEMO_DIR)

# Both tiers (what CI runs): tests/unit (pure Python, no JVM; on two workers, as test-fast) and
# tests/integration (Spark, Delta, MLflow, streams: one process, so one shared SparkSession).
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n 2 tests/unit
	$(VENV)/bin/pytest --durations=15 tests/integration

# The unit tier alone: well under a minute, no Spark (two pytest workers: ~70 CPU-s of tests).
test-fast: install
	$(VENV)/bin/pytest -n 2 tests/unit

lint: install
	$(VENV)/bin/ruff check .

docs: install
	$(PY) -m health_monitor.gold.docs

clean:
	rm -rf $(VENV) .health-monitor .pytest_cache
