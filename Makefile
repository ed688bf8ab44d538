# flexnet — set-up and everyday commands (`make help` lists the targets).
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

.PHONY: help install run sweep test test-fast test-slurm mutate seeded-bugs bench reproduce reproduce-extra report clean slurm-start slurm-stop

help:  ## list the targets
	@echo "make TARGET [VENV=.venv] [PYTEST_ARGS=...]; targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 18

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

install: $(DEPS_STAMP) $(PROJECT_STAMP)  ## create $(VENV) if missing (torch with CUDA, ~6 GB) and install flexnet into it

run: install  ## one EMC measurement with the default config (python -m flexnet)
	$(PY) -m flexnet

sweep: install  ## the default sweep over scaling.params (python -m flexnet -m)
	$(PY) -m flexnet -m

test: install  ## the test suite (all but the slurm-marked tests; what CI runs)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install  ## the quick subset: no slow and no slurm tests, nothing started on the system
	$(PY) -m pytest -q -m 'not slow and not slurm' $(PYTEST_ARGS)

mutate: install  ## mutation testing of the core (mutmut; slow, not in CI): MUTATE_GROUPS="search records verdicts fit", build/mutate/scores.md
	$(PY) scripts/mutate.py $(MUTATE_GROUPS)

seeded-bugs: install  ## issue 35's seven code changes, each on a copy of the tree: the fast tests must fail on each (FULL=1: whole fast suite)
	$(PY) scripts/seeded_bugs.py $(SEEDED)

slurm-start:  ## start a local single-node Slurm cluster (installs slurm/munge/mariadb with apt if missing)
	bash scripts/slurm-local.sh start

slurm-stop:  ## stop it
	bash scripts/slurm-local.sh stop

test-slurm: install  ## start local Slurm, run the slurm-marked tests, stop it
	bash scripts/slurm-local.sh start
	$(PY) -m pytest -q -m slurm -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; bash scripts/slurm-local.sh stop; exit $$rc

bench: install  ## benchmarks, written to BENCHMARKS.md
	$(PY) benchmarks/run.py --out BENCHMARKS.md

reproduce: install  ## the verdict presets (lr tuning, 5 seeds; resumes; REPRODUCE_ARGS=--fresh: from scratch), REPRODUCTION.md
	$(PY) scripts/reproduce.py --set verdict --out REPRODUCTION.md $(REPRODUCE_ARGS)

reproduce-extra: install  ## the other study presets (data, classes, resolution, scaling, reparam, ...)
	$(PY) scripts/reproduce.py --set extra --out REPRODUCTION.md $(REPRODUCE_ARGS)

report: $(if $(DIR),install)  ## tables and figures of a sweep: make report DIR=multirun/<date>/<time> [REPORT_ARGS=...]
	@test -n "$(DIR)" || { echo "make report: give the sweep directory, e.g. make report DIR=multirun/<date>/<time>" >&2; exit 2; }
	$(PY) -m flexnet.report $(DIR) $(REPORT_ARGS)

clean:  ## remove outputs/ and .pytest_cache
	rm -rf outputs .pytest_cache
