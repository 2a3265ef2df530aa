# wikihow-tiir — the two commands first: `make build-dataset`, `make test`.
# Every target creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, from the local CPU wheel; GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
OUTPUT ?= data/builds/sample
DATASET ?= $(OUTPUT)
REPO_ID ?= your-org/wikiHow-TIIR
VERSION ?= 0.1.0
PUBLISH_ARGS ?= --dry-run
PREFECT_PORT ?= 4200

# offline and isolated: no telemetry, Prefect state inside the repo's data/ folder, no Hub calls
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_HOME ?= $(CURDIR)/data/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_LOGGING_LEVEL ?= WARNING
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TOKENIZERS_PARALLELISM ?= false

STAMP := $(VENV)/.installed-core
LLM_STAMP := $(VENV)/.installed-llm

.PHONY: install install-llm install-browser build-dataset test test-fast lint format bench publish evaluate train-mme report clean \
	prefect-server deploy

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)

# llama.cpp's OpenAI-compatible server compiles from source (~5 min); portable build flags.
$(LLM_STAMP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet -e ".[dev,llm]"
	touch $@

install-llm: $(LLM_STAMP)

# headless Chromium for the report's browser test (Debian package; needs root)
install-browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

build-dataset: $(STAMP)
	$(BIN)/wikihow-tiir build --output $(OUTPUT)

test: $(LLM_STAMP) install-browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not llm and not browser and not slow"

lint: $(STAMP)
	$(BIN)/ruff check wikihow_tiir flows tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff format wikihow_tiir flows tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# dry run by default; a release: make publish REPO_ID=org/name VERSION=1.0.0 PUBLISH_ARGS= (needs HF_TOKEN or `hf auth login`)
publish: $(STAMP)
	HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 $(BIN)/wikihow-tiir publish $(DATASET) --repo-id $(REPO_ID) --version $(VERSION) $(PUBLISH_ARGS)

evaluate: $(STAMP)
	$(BIN)/wikihow-tiir evaluate --dataset $(DATASET) --split test --model bm25 --model minilm --model fusion-effnet --output $(DATASET)/eval

train-mme: $(STAMP)
	$(BIN)/wikihow-tiir mme train --dataset $(DATASET) --output $(DATASET)/mme-mini

report: $(STAMP)
	$(BIN)/wikihow-tiir report $(DATASET)

# the maintainers' Prefect server on this machine, its UI at http://127.0.0.1:$(PREFECT_PORT) (state in data/.prefect)
prefect-server: $(STAMP)
	PREFECT_UI_ENABLED=true $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# register prefect.yaml's deployments with that server, then run a worker for them (in this checkout; the
# Hub is on for the release flow's publish step: HF_TOKEN or `hf auth login`)
deploy: $(STAMP)
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/prefect work-pool create wikihow-tiir --type process --overwrite
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/prefect --no-prompt deploy --all
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 \
		$(BIN)/prefect worker start --pool wikihow-tiir

clean:
	rm -rf data/builds data/.prefect .pytest_cache .ruff_cache
