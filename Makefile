# The README's two commands. Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rcd-installed
DEMO_ARGS ?=

.PHONY: demo test test-fast install clean

demo: $(STAMP)
	$(VENV)/bin/rcd demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

# the inner loop: everything but the tests marked slow (under a minute on an idle 2-core machine)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

install: $(STAMP)

# A torch already importable by $(PYTHON) is reused (system site packages) and kept.
$(PY):
	if $(PYTHON) -c "import torch" 2>/dev/null; then \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi

$(STAMP): pyproject.toml scripts/install_torch.py | $(PY)
	$(PY) scripts/install_torch.py
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) runs
