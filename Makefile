# Signoff: `make run` to try it, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test lint bench load install lock clean screenshots prove mutate

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	touch $(STAMP)

install: $(STAMP)

# After changing a pin in pyproject.toml and installing it: the full lock, then the image's
# runtime part of it (bin/runtime-lock; a test fails when the two disagree).
lock: $(STAMP)
	$(BIN)/pip freeze | sort -f > requirements.lock
	$(BIN)/python bin/runtime-lock

# Development defaults: SQLite and the filesystem broker under var/ unless DATABASE_URL/REDIS_URL.
# bin/dev-env writes the git-ignored .env (DEBUG, generated keys, the URL with PORT) that every
# manage.py command then reads, in this terminal or any other.
run: $(STAMP)
	$(BIN)/python bin/dev-env --port $(PORT)
	mkdir -p "$${SIGNOFF_VAR_DIR:-var}"
	$(BIN)/python manage.py migrate --no-input -v 0
	$(BIN)/python manage.py seed_demo
	PORT=$(PORT) bin/run-all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Two workers by default (pytest-xdist; each its own test database and Redis database);
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: $(STAMP) lint
	env -u DATABASE_URL DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run -v 0 || (echo "Missing migrations"; exit 1)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The organisation model (tests/invariants/) for as long as asked: PROVE_MINUTES (default 30) or
# PROVE_EXAMPLES, whichever ends first. Failing examples are saved to tests/invariants/failures/:
# commit them, and every later run (make test too) replays them first.
PROVE_MINUTES ?= 30
PROVE_EXAMPLES ?=
prove: $(STAMP)
	SIGNOFF_MODEL_SECONDS=$$(( $(PROVE_MINUTES) * 60 )) SIGNOFF_MODEL_EXAMPLES=$(PROVE_EXAMPLES) \
		$(BIN)/pytest tests/invariants/test_model.py -q -s -p no:randomly

# Mutation testing of the rule modules (pyproject.toml [tool.mutmut]); long, not part of CI.
# MUTANTS narrows it, e.g. make mutate MUTANTS='approvals.authority*'. Needs PostgreSQL.
# mutmut lives in a venv of its own: its dependency setproctitle renames the Celery and gunicorn
# processes (and hides their environment), which the bin/run-all supervision test relies on.
MUTANTS ?=
MUTATE_VENV := .venv-mutate
MUTATE_PINS := mutmut==3.8.1 coverage==7.17.5 libcst==1.9.0 linkify-it-py==2.2.0 \
	mdit-py-plugins==0.7.0 platformdirs==4.14.9 setproctitle==1.3.8 textual==8.2.8
$(MUTATE_VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/pip install --quiet --upgrade pip
	$(MUTATE_VENV)/bin/pip install --quiet -r requirements.lock $(MUTATE_PINS)
	touch $@

mutate: $(MUTATE_VENV)/.installed
	$(MUTATE_VENV)/bin/mutmut run --max-children 1 $(MUTANTS)
	$(MUTATE_VENV)/bin/mutmut results

screenshots: $(STAMP)
	SIGNOFF_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/browser -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Bounded load test of gunicorn + PostgreSQL + Redis + Celery on 127.0.0.1 (stops by itself).
# LOAD_ARGS="--web-replicas 2 --worker-replicas 2": one web + one worker, then two of each
# (compose.yaml's commands), side by side in docs/benchmarks.md (docs/capacity.md reads them).
load: $(STAMP)
	$(BIN)/python -m benchmarks.load $(LOAD_ARGS)

clean:
	rm -rf var
