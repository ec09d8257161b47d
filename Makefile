# The README's two commands. Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.rcd-core-installed
STAMP  := $(VENV)/.rcd-installed
DEMO_ARGS ?=

# Compatibility run: the model, preset and decoding tests again under transformers 4, whose
# packages sit in $(TF4_DIR) ahead of the venv's own on PYTHONPATH (same torch, no second venv).
# Only the packages whose versions transformers 4 needs differently go there (--no-deps: the
# rest, numpy included, stay the venv's), so the install takes seconds.
TF4_VERSION ?= 4.57.6
TF4_PACKAGES = "transformers==$(TF4_VERSION)" "tokenizers>=0.22,<=0.23.0" "huggingface_hub>=0.34,<1.0"
TF4_DIR     ?= .venv-tf4
TF4_TESTS   ?= tests/models/test_models.py tests/models/test_presets.py tests/models/test_remote_code.py \
              tests/decode/test_generate.py tests/models/test_trado.py tests/models/test_fastdllm_v2.py

.PHONY: demo test test-fast test-tf4 lint install clean mutate browser

demo: $(CORE)
	$(VENV)/bin/rcd demo $(DEMO_ARGS)

# tests run in parallel (pytest-xdist): one worker per core, a test file's tests on one worker
# (its module fixtures, trained tiny models among them, are built once), the files in the
# order tests/conftest.py gives them (files with a long test first, then those with a slow one),
# not by test count (--no-loadscope-reorder: pytest-xdist 3.8)
TEST_WORKERS ?= auto
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test: $(STAMP) browser
	$(PYTEST)

# the inner loop: everything but the tests marked slow (under a minute on an idle 2-core machine)
test-fast: $(STAMP) browser
	$(PYTEST) -m "not slow"

# The playground's browser test (tests/serve/test_playground.py) drives Debian's chromium with its
# chromedriver: installed with apt-get as root (or sudo without a password), nothing done when present.
BROWSER_PACKAGES = chromium chromium-driver
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif ! command -v apt-get >/dev/null; then \
		echo "no apt-get: install chromium and chromedriver at /usr/bin for the playground test"; \
	else \
		if [ "$$(id -u)" = 0 ]; then root=; elif sudo -n true 2>/dev/null; then root=sudo; else \
			echo "the playground test needs: apt-get install $(BROWSER_PACKAGES) (as root)"; exit 0; fi; \
		$$root apt-get update -qq && \
		$$root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	fi

test-tf4: $(STAMP) $(TF4_DIR)/.installed
	PYTHONPATH=$(TF4_DIR) $(PYTEST) $(TF4_TESTS)

$(TF4_DIR)/.installed: Makefile | $(STAMP)
	rm -rf $(TF4_DIR)
	$(PY) -m pip install -q --no-deps --target $(TF4_DIR) $(TF4_PACKAGES)
	touch $@

# the rules of docs/architecture.md (import contracts in pyproject.toml) and ruff's lint rules.
LINTED := src tests benchmarks experiments scripts
lint: $(STAMP)
	PYTHONPATH=src:. $(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

install: $(STAMP)

# Mutation testing of the method's core against its fast tests ([tool.mutmut] in pyproject;
# not CI: minutes). Survivors, with their diffs, go to mutation-report.md. mutmut forks a
# worker per mutant from a process that has run torch: with more than one OpenMP thread the
# forked workers deadlock (and every mutant "times out"), hence one thread.
MUTATE_JOBS ?= 2
mutate: $(STAMP)
	rm -rf mutants
	-OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 15 $(VENV)/bin/mutmut run --max-children $(MUTATE_JOBS)
	$(PY) scripts/mutation_report.py > mutation-report.md
	head -12 mutation-report.md

# A torch already importable by $(PYTHON) is reused (system site packages) and kept.
$(PY):
	if $(PYTHON) -c "import torch" 2>/dev/null; then \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi

# the demo needs the package and its server (the playground); the tests also the dev extra
# (lm-eval, peft, trackers, mutmut, the openai client, hypothesis, selenium)
$(CORE): pyproject.toml scripts/install_torch.py | $(PY)
	$(PY) scripts/install_torch.py
	$(PY) -m pip install -q -e ".[serve]"
	touch $@

$(STAMP): $(CORE)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) $(TF4_DIR) runs mutants mutation-report.md
