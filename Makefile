# One-command set-up: `make serve` installs everything and starts the gateway;
# `make test` installs everything and runs the whole test suite; `make test-fast` runs the part
# that needs no subprocess, no PostgreSQL and no embedded model (SQLite only), in about a minute.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-packages serve test test-fast lint bench clean

install: system-packages $(STAMP)

# Debian packages the tests and features need: a browser for the dashboard's page tests and
# bubblewrap for the agents' executor sandbox. Installed once, with sudo when not root.
DEB_PACKAGES := chromium bubblewrap
system-packages:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "install these system packages by hand:$$missing" >&2; fi; \
	fi

# llama.cpp is compiled for a portable x86-64 baseline (AVX2), not for the build machine's CPU: in a
# virtual machine whose CPUID reports AVX-512 or AMX that the hypervisor does not enable, a native
# build crashes on the first evaluation. (The flags are x86 options; other architectures ignore them.)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# The requirement as pyproject.toml states it (one place to change the version).
LLAMA_REQUIREMENT := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# llama-cpp-python compiles from source on first install (several minutes), with the flags above;
	# not from pip's wheel cache, which may hold a build made with other flags.
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
	  CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --quiet --no-cache-dir '$(LLAMA_REQUIREMENT)'
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

serve: install
	$(BIN)/bastion serve $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

# Markers: pyproject.toml and tests/support/markers.py.
FAST_TESTS := not integration and not postgres and not local_model

# In two processes (pytest-xdist), each with its own session fixtures and template databases.
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "$(FAST_TESTS)" $(ARGS)

# Style, types, and the architecture (layers and no import cycles, see pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	bash bench/run_gateway_bench.sh $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
