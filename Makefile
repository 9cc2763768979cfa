# musicrep: two commands on a fresh machine (Python 3.11 + make + git):
#   make repro   set up .venv and run the whole pipeline on the embedded synthetic default (dvc repro)
#   make test    set up .venv and run the tests
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TOOLS := .tools
UV_VERSION := 0.13.9
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: env repro rehearse test test-slow bench clean-env ui-mlflow ui-prefect

env: $(VENV)/.installed

# uv installs the locked stack in ~20 s (pip takes minutes, docs/spec.md §10.1); pip is the fallback.
$(VENV)/.installed: pyproject.toml requirements.lock
	@if [ ! -x $(TOOLS)/bin/uv ]; then $(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install -q uv==$(UV_VERSION) || true; fi
	@if [ -x $(TOOLS)/bin/uv ]; then \
	  $(TOOLS)/bin/uv venv -q --allow-existing $(VENV) --python $(PYTHON) && \
	  VIRTUAL_ENV=$(VENV) $(TOOLS)/bin/uv pip sync -q --compile-bytecode requirements.lock && \
	  VIRTUAL_ENV=$(VENV) $(TOOLS)/bin/uv pip install -q --no-deps -e . ; \
	else \
	  $(PYTHON) -m venv $(VENV) && PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pip install -q --compile --no-deps -r requirements.lock && $(VENV)/bin/pip install -q --no-deps -e . ; \
	fi
	@touch $@

# JOBS grid cells run at once, one torch thread each (default: `musicrep dag --jobs`, below). DVC releases its
# repo lock while a stage command runs, so `dvc repro --single-item` of different cells can run
# side by side (each locks only its own deps and outs). DVC still holds the repo lock for a
# moment while it reads the pipeline and writes dvc.lock, and without `--wait-for-lock` a second
# process arriving then fails at once ("Unable to acquire lock"); it happened with three seeds,
# where the finished seed-0 cells are skipped in about 2 s each. The data stages run first, in one DVC
# process: measured, fanning them out per dataset (`musicrep dag --data-targets`, one
# `--single-item` run per stage) took 58 s against 44 s, since DVC's start-up outweighs the
# small synthetic datasets. The final `dvc repro` runs the report and checks that nothing is
# left stale.
# How many: `musicrep dag --jobs`, i.e. `runtime.gpu_cells` (default 1) per GPU when the cells run
# on CUDA (16 cells on one GPU would fight for its memory, each with 4 loader workers), else one per
# core. It also checks `runtime.device` first: `cuda`, or `auto` under `profile: paper`, without a
# usable CUDA stops here with one line (exit 2), before the data stages. `make repro JOBS=N` overrides.
JOBS ?= $(shell $(CURDIR)/$(VENV)/bin/musicrep dag --jobs 2>/dev/null)
# Each parallel cell learns its slot (0 .. JOBS-1) in MUSICREP_CELL_SLOT (GNU xargs; left out where xargs lacks
# it) and, on a box with several GPUs, pins itself to GPU slot // runtime.gpu_cells through CUDA_VISIBLE_DEVICES
# (pipeline.orchestration.runners.pin_cell_gpu), so the cells spread over the GPUs instead of all using GPU 0.
CELL_SLOT ?= $(shell xargs --process-slot-var=MUSICREP_CELL_SLOT true </dev/null >/dev/null 2>&1 && echo --process-slot-var=MUSICREP_CELL_SLOT)
# Each phase prints a `[repro] <phase> <unix time>` line and each cell a `[repro] cell <stage> <start> <end>`
# line, which `benchmarks/grid.py` turns into the wall-time breakdown of docs/benchmarks.md.
STAMP = echo "[repro] $(1) $$(date +%s.%N)"
repro: env
	@$(call STAMP,start)
	@musicrep dag --jobs >/dev/null
	musicrep dag --write
	dvc --wait-for-lock repro features
	@$(call STAMP,data-done)
	musicrep dag --targets | OMP_NUM_THREADS=1 xargs -P $(or $(JOBS),1) $(CELL_SLOT) -I{} sh -c \
	  's=$$(date +%s.%N); dvc --wait-for-lock repro --single-item "{}"; rc=$$?; echo "[repro] cell {} $$s $$(date +%s.%N)"; exit $$rc'
	@$(call STAMP,cells-done)
	dvc --wait-for-lock repro
	@$(call STAMP,report-done)
	musicrep compare
	@echo "[repro] done. The report: $(CURDIR)/$$(musicrep params | sed -n 's/^  out_dir: //p' | head -1)/index.html (open it in a browser)"
	@echo "[repro] dashboards: make ui-mlflow (runs and registered models, http://127.0.0.1:5000), make ui-prefect (flow runs, http://127.0.0.1:4200)"

# The paper profile end to end through DVC on miniature mirrors (127.0.0.1), on the CPU, lengths capped
# (pipeline/orchestration/rehearse.py); REHEARSE_ARGS="--tasks speech_commands --models fcn" for one cell.
REHEARSE_OUT ?= /tmp/musicrep-rehearsal-$(shell date +%s)
rehearse: env
	musicrep rehearse --out $(REHEARSE_OUT) $(REHEARSE_ARGS)

test: env
	$(VENV)/bin/pytest -q

test-slow: env
	$(VENV)/bin/pytest -q -m slow

bench: env
	$(VENV)/bin/python benchmarks/models.py --steps 2 --batch 16

# MLflow 3 opens experiments in its GenAI view; `?workflowType=machine_learning` picks the model-training
# view (runs, metrics, the registry) and the UI remembers the choice; `viewStateShareKey=musicrep` opens the
# runs table sorted by the primary metric with its interval (the shared view the report stores).
ui-mlflow: env
	@echo "MLflow: open http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=musicrep&workflowType=machine_learning (runs by primary metric; experiments are tasks)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --host 127.0.0.1 --port 5000 --workers 1 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

ui-prefect: env
	$(VENV)/bin/python -m flows.server --host 127.0.0.1 --port 4200  # prefect server + CSRF, CORS and Host checks

# A team MLflow server (docs/scaling.md): PostgreSQL (initdb/pg_ctl into .services/postgres, 127.0.0.1:$(PG_PORT))
# as the backend store, proxied artifacts in .services/artifacts, on 127.0.0.1:$(MLFLOW_PORT); then
# export MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT). Data stays across stop/start.
.PHONY: mlflow-server mlflow-server-stop
MLFLOW_PORT ?= 5001
PG_PORT ?= 5433
mlflow-server: env
	$(VENV)/bin/python -m pipeline.tracking.server start --dir .services --port $(MLFLOW_PORT) --pg-port $(PG_PORT)

mlflow-server-stop:
	$(VENV)/bin/python -m pipeline.tracking.server stop --dir .services

clean-env:
	rm -rf $(VENV) $(TOOLS)
