# Two commands for a new user: `make train` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test install clean

# Installs the exact versions the tests passed with (requirements.lock); pyproject.toml holds compatible ranges.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Trains the default model (the course MLP). Override with e.g. `make train CONFIG=configs/vgg.yaml ARGS="--data.data_dir /path"`.
CONFIG ?= configs/mlp.yaml
ARGS ?=
train: $(STAMP)
	$(BIN)/python train.py fit --config $(CONFIG) $(ARGS)

test: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25 tests $(ARGS)

clean:
	rm -rf $(VENV) runs wandb lightning_logs .pytest_cache
