# The two commands: `make demo` and `make test`. Both create .venv when absent.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck check docker-engine train-base-image train-torch-image train-torch-cuda-image bench-fl-flower clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/trainyard demo

test: $(STAMP)
	@command -v bwrap >/dev/null || apt-get install -y -q bubblewrap >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1) || echo "make test: bubblewrap could not be installed; sandbox tests will skip"
	@command -v virtuoso-t >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q virtuoso-opensource >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q virtuoso-opensource >/dev/null 2>&1) || echo "make test: virtuoso-opensource could not be installed; the external-store tests will skip"
	@command -v docker-registry >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null 2>&1 || echo "make test: docker-registry could not be installed; the registry-pull tests will skip"
	@bash docker/ensure-engine.sh || echo "make test: no Docker engine could be started; Docker tests will skip"
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

docker-engine:
	bash docker/ensure-engine.sh

train-base-image: docker-engine
	bash docker/build-train-base.sh

# Federated trains at Docker stations: the base image plus PyTorch (CPU), from a host wheelhouse.
train-torch-image: docker-engine $(STAMP)
	bash docker/build-train-torch.sh

# GPU stations: the CUDA build of torch from PyPI (several GB; needs the NVIDIA Container Toolkit to run).
train-torch-cuda-image: docker-engine $(STAMP)
	TRAINYARD_TORCH=cuda bash docker/build-train-torch.sh

# Flower, for bench/fl's side-by-side, in its own environment (its pins never touch the product's).
bench-fl-flower: $(STAMP)
	@test -x .venv-flower/bin/python || $(PYTHON) -m venv .venv-flower
	.venv-flower/bin/pip install -q "flwr[simulation]" "torch==2.13.0" "scikit-learn>=1.4,<2"
	$(PY) -m bench.fl.run

clean:
	rm -rf $(VENV) .venv-flower demo-state .pytest_cache .mypy_cache .ruff_cache
