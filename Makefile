# The two commands that matter: `make serve` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# Tests on PostgreSQL run when this is set (.ci/run sets it).
CHUISHAO_TEST_POSTGRES_URL ?=
export CHUISHAO_TEST_POSTGRES_URL

# `make test-fast`: the quick loop while working (lint, types, every test but the slow ones:
# reliability, several instances behind nginx, the wheel). `make test` runs everything.
.PHONY: serve test test-fast lint typecheck migrations-check pytest pytest-postgres bench i18n clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

serve: $(STAMP)
	@scripts/ensure-fonts.sh >/dev/null || echo "posters will not print until the fonts are installed" >&2
	$(BIN)/chuishao migrate
	$(BIN)/chuishao init --if-needed
	$(BIN)/chuishao serve --first-admin-link

test: $(STAMP)
	@scripts/ensure-fonts.sh >/dev/null || exit 1
	@scripts/ensure-test-tools.sh >/dev/null || exit 1
	@browser=$$(scripts/ensure-chromium.sh) || exit 1; \
	if [ "$$browser" != ok ]; then export CHUISHAO_SKIP_BROWSER=1; fi; \
	proxy=$$(scripts/ensure-nginx.sh) || exit 1; \
	if [ "$$proxy" != ok ]; then export CHUISHAO_SKIP_NGINX=1; fi; \
	$(MAKE) --no-print-directory lint typecheck migrations-check pytest pytest-postgres
	@if [ -n "$(CHUISHAO_BENCH)" ]; then $(MAKE) --no-print-directory bench; fi

test-fast: $(STAMP)
	@browser=$$(scripts/ensure-chromium.sh) || exit 1; \
	if [ "$$browser" != ok ]; then export CHUISHAO_SKIP_BROWSER=1; fi; \
	$(MAKE) --no-print-directory lint typecheck && \
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Models and migrations must never drift, on either database.
migrations-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -c "import sys; from service.platform import migrate; u=sys.argv[1]; migrate.upgrade(u); migrate.check(u)" "sqlite:///$$tmp/check.sqlite3"
	@if [ -n "$(CHUISHAO_TEST_POSTGRES_URL)" ]; then \
	$(BIN)/python -m tests.pgutil check "$(CHUISHAO_TEST_POSTGRES_URL)"; fi

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

pytest-postgres: $(STAMP)
	@if [ -n "$(CHUISHAO_TEST_POSTGRES_URL)" ]; then \
	$(BIN)/python -m pytest -q -p no:cacheprovider --db=postgres -m "not browser and not sqlite_only"; \
	else echo "CHUISHAO_TEST_POSTGRES_URL not set: PostgreSQL tests skipped"; fi

# Every benchmark prints its figures and a ratio to a floor measured in the same run.
# `make test CHUISHAO_BENCH=1` runs them after the tests (they take ~20 minutes).
bench: $(STAMP)
	$(BIN)/python bench/crypto.py
	$(BIN)/python bench/intake.py
	@if [ -n "$(CHUISHAO_TEST_POSTGRES_URL)" ]; then \
	$(BIN)/python bench/intake.py --postgres "$(CHUISHAO_TEST_POSTGRES_URL)"; fi
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/nojs_upload.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/browser.py

i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -o service/locale/messages.pot --no-location \
	  --project=chuishao --copyright-holder=Chuishao -w 100 .
	$(BIN)/pybabel update -i service/locale/messages.pot -d service/locale -w 100 --no-fuzzy-matching
	$(BIN)/python -m service.platform.i18n

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
