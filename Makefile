# sslab — the two commands: `make lab` (start the course) and `make test`.
SHELL := /bin/bash
VENV   := .venv
PY     := $(VENV)/bin/python
# Real data: $SSLAB_DATA_DIR if set, else ./data (filled by `make data`),
# else the course's shared data folder beside the checkout.
SSLAB_DATA_DIR ?= $(firstword $(wildcard $(CURDIR)/data/mnist) $(wildcard $(CURDIR)/../shared/data/mnist))
export SSLAB_DATA_DIR := $(patsubst %/mnist,%,$(SSLAB_DATA_DIR))
# Options: make lab NO_BROWSER=1 PORT=8888 IP=localhost CUDA=1
NO_BROWSER ?=
PORT       ?= 8888
IP         ?= localhost
# CUDA=1: also the "Rust (sslab, CUDA)" kernel (see docs/cuda.md)
CUDA       ?=
NOTEBOOK_PROFILE ?= smoke

.PHONY: lab setup prewarm test test-crate test-runner test-notebooks test-handouts test-lab notebooks handouts data doc bench clean check-cuda cuda-bundle gpu-check

## lab: install what is missing, pre-warm the kernel, start JupyterLab on notebooks/ (as root: with --allow-root, see kernel/lab)
lab: setup prewarm
	@kernel/lab --port $(PORT) --ip $(IP) $(if $(NO_BROWSER),--no-browser,)

## setup: rust-src, mold, evcxr_jupyter 0.22.0, .venv and the "Rust (sslab)" kernel (CUDA=1: and the CUDA one)
setup:
	@kernel/setup $(if $(CUDA),--cuda,)

## prewarm: compile the notebooks' dependencies once into evcxr's cache
prewarm: setup
	@echo "[prewarm] compiling sslab and Candle in the Rust (sslab) kernel (first time: several minutes)"
	@$(PY) kernel/run-notebooks kernel/prewarm.ipynb
ifneq ($(CUDA),)
	@echo "[prewarm] compiling sslab with CUDA in the Rust (sslab, CUDA) kernel (first time: about 11 minutes on 2 cores)"
	@$(PY) kernel/run-notebooks --kernel rust-sslab-cuda --startup-timeout 7200 kernel/prewarm.ipynb
endif

## test: crate tests, the runner's own tests, every notebook through the real kernel (smoke profile), then the handouts and JupyterLab in a browser (when Chromium is present)
test: setup test-crate test-runner test-notebooks test-handouts test-lab

test-crate:
	cargo test --workspace
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

test-runner: setup
	$(PY) tests/runner_test.py
	$(PY) tests/launch_test.py
	$(PY) tests/claims_test.py
	$(PY) tests/interrupt_test.py
	$(PY) tests/spare_kernel_test.py

test-notebooks: setup
	$(PY) kernel/run-notebooks --profile $(NOTEBOOK_PROFILE) notebooks

test-handouts: setup
	$(PY) tests/handouts_test.py

# make lab itself, in the background on a free port: the server answers on /lab and lists the kernel
test-lab: setup
	$(PY) tests/lab_test.py

## notebooks: re-execute every notebook in the cpu profile and save the outputs (for committing)
notebooks: setup
	$(PY) kernel/run-notebooks --profile cpu --inplace notebooks

## handouts: run the notebooks fresh and export student and instructor editions, HTML and PDF, into handouts/
##   HANDOUTS=notebooks/ch24 (a chapter) or one .ipynb; HANDOUT_PROFILE=cpu|smoke|gpu; NO_EXECUTE=1 exports the committed outputs
HANDOUTS        ?= notebooks
HANDOUT_PROFILE ?= cpu
handouts: setup
	@kernel/setup-browser --check
ifneq ($(NO_EXECUTE),)
	$(PY) kernel/handouts.py --out handouts $(HANDOUTS)
else
	$(PY) kernel/run-notebooks --profile $(HANDOUT_PROFILE) --timeout 1500 --export handouts $(HANDOUTS)
endif

## data: download the public originals into ./data (needs internet; with CIFAR-10, 185 MB, and STL-10, 3.1 GB: SSLAB_NO_STL10=1 skips STL-10)
data:
	@kernel/fetch-data data

## bench: our training step vs the PyTorch reference, alternating runs (installs torch into .venv-bench; not part of test)
BENCH_VENV ?= .venv-bench
TORCH_REFERENCE ?= ../shared/bench/torch_reference.py
bench:
	cargo build --release -p sslab --bin sslab
	@test -x $(BENCH_VENV)/bin/python || (python3 -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install --quiet torch numpy)
	TORCH_REFERENCE=$(TORCH_REFERENCE) bench/run-bench --torch-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

## doc: API documentation (warnings are errors)
doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

## check-cuda: build the cuda flavour (tests and command line) without a GPU; nvcc from PyPI via kernel/setup-cuda
check-cuda:
	e=$$(kernel/setup-cuda --env) && eval "$$e" && CARGO_TARGET_DIR=target/cuda cargo test --release -p sslab --features cuda --no-run \
	  && CARGO_TARGET_DIR=target/cuda cargo build --release -p sslab --features cuda --bin sslab

## cuda-bundle: the binaries a GPU machine needs for gpu-check, in target/cuda-bundle
cuda-bundle:
	kernel/cuda-bundle

## gpu-check: on a GPU machine, check the cuda build against the CPU and time it against PyTorch (< 5 min; builds the bundle first if missing)
gpu-check:
	@test -x target/cuda-bundle/sslab || kernel/cuda-bundle
	kernel/gpu-check --reference $(TORCH_REFERENCE) --markdown target/gpu-check.md

clean:
	cargo clean
	rm -rf /tmp/sslab-kernels-$$(id -u) /tmp/sslab-kernels-$$(id -u)-cuda
	rm -rf $(VENV)
