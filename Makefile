# qwq-ollama: every target installs what it needs (Python deps, Ollama v0.24.0, the small model).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
QO     := $(BIN)/qwq-ollama
PYTEST_ARGS ?=

.PHONY: demo test test-fast models render ollama ollama-build-deps smollm2 bench deps lint clean

deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[test,game,plot]'
	touch $@

# Headers llama.cpp needs that the Go module zip leaves out (Debian names); installed only when
# missing, and only with apt-get as root; otherwise `qwq-ollama install-ollama` says what to do.
ollama-build-deps:
	@if [ ! -e /usr/include/nlohmann/json_fwd.hpp ] || [ ! -e /usr/include/stb/stb_image.h ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nlohmann-json3-dev libstb-dev >/dev/null; \
	  fi; \
	fi

ollama: deps ollama-build-deps
	$(QO) install-ollama

smollm2: deps
	$(QO) fetch-smollm2

render: deps
	$(QO) render

demo: ollama smollm2
	$(QO) demo

# Lint first: it takes a second, the live tier takes minutes.
test: lint ollama smollm2
	$(QO) render --check
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything that needs neither the Ollama binary nor a daemon (tests/conftest.py marks the rest
# `live`): no build, no daemon, about a minute.
test-fast: deps
	$(BIN)/pytest -m "not live" $(PYTEST_ARGS)

# Real QwQ-32B: render, then register every variant with the daemon at $$OLLAMA_HOST.
models: ollama
	$(QO) render
	$(QO) create

bench: ollama smollm2
	$(BIN)/python bench/run.py

lint: deps
	$(BIN)/ruff check qwq_ollama tests bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
