# The two commands of the README quick start. Both set themselves up on a fresh machine.
.PHONY: demo test lint setup

setup:
	@bash scripts/setup.sh

## Set up, then run the demo plant end to end on embedded defaults.
demo: setup
	.venv/bin/axhub demo

## Set up, then run lint, type checks and the whole test suite.
test: setup
	@bash scripts/services.sh
	.venv/bin/ruff check src tests
	.venv/bin/ruff format --check src tests
	.venv/bin/mypy
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check src tests
	.venv/bin/ruff format --check src tests
	.venv/bin/mypy
