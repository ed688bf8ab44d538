# flexnet — set-up and everyday commands.
#   make run    create .venv if missing, install, run one EMC measurement
#   make test   same set-up, then the test suite
# VENV may point anywhere (CI keeps one outside the clone, keyed by the dependency list).
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEPS_STAMP := $(VENV)/.flexnet-deps-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
PROJECT_STAMP := $(VENV)/.flexnet-src-$(shell echo "$(CURDIR)" | sha256sum | cut -c1-12)

.PHONY: install run sweep test test-fast test-slurm bench reproduce report clean slurm-start slurm-stop

$(DEPS_STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.flexnet-deps-* $(VENV)/.flexnet-src-*
	@touch $(DEPS_STAMP) $(PROJECT_STAMP)

# the same environment used from another checkout: point the editable install here
$(PROJECT_STAMP): $(DEPS_STAMP)
	$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.flexnet-src-*
	@touch $(PROJECT_STAMP)

install: $(DEPS_STAMP) $(PROJECT_STAMP)

run: install
	$(PY) -m flexnet

sweep: install
	$(PY) -m flexnet -m

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m 'not slow' $(PYTEST_ARGS)

slurm-start:
	bash scripts/slurm-local.sh start

slurm-stop:
	bash scripts/slurm-local.sh stop

test-slurm: install
	bash scripts/slurm-local.sh start
	$(PY) -m pytest -q -m slurm -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; bash scripts/slurm-local.sh stop; exit $$rc

bench: install
	$(PY) benchmarks/run.py --out BENCHMARKS.md

reproduce: install
	$(PY) scripts/reproduce.py --out REPRODUCTION.md

clean:
	rm -rf outputs .pytest_cache
