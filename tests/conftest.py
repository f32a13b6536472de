"""Shared test set-up: quiet TensorFlow logs, the compiled op library, GPU marker, a tiny model."""

import contextlib
import fcntl
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# gRPC's post-fork handlers can break subprocesses started later in the same process
# (grpc/grpc#43055: an ffmpeg writer's pipe broke after the serving tests in one
# fresh-clone run); the suite never forks gRPC itself.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


# `make test` runs the suite in two processes (pytest-xdist, `-n 2 --dist loadfile
# --no-loadscope-reorder`): each file is one unit of work, and the units are handed out in
# the order below, longest first (seconds of a whole run on the 2-core AMD EPYC machine,
# 2026-12-05, with the tiny configuration's one-level depth net; files not listed follow
# in collection order), so that the two processes finish close together.
# test_serving.py comes last: its process then runs nothing after the gRPC servers and
# channels (ffmpeg subprocesses broke after them once; see GRPC_ENABLE_FORK_SUPPORT above).
# The export and serving files share one export of the tiny SavedModel per run
# (`tiny_export`), made by the process that runs test_export_savedmodel.py early on.
# (xdist's `--dist loadgroup` cannot group files under pytest 9.2: it renames a node's id
# where pytest no longer reads it.)
SLOW_FILES = {
    "test_notebooks.py": 145, "test_animate.py": 94, "test_export_mobile.py": 68,
    "test_export_savedmodel.py": 67, "test_ensemble.py": 66, "test_model_training.py": 61,
    "test_training.py": 60, "test_model.py": 48, "test_animate_cli.py": 46,
    "test_fullres.py": 44, "test_bundle.py": 40, "test_ui.py": 39, "test_depth.py": 38,
    "test_weights_io.py": 30, "test_adaptive_warp.py": 18,
}
LAST_FILE = "test_serving.py"


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: (item.fspath.basename == LAST_FILE,
                                 -SLOW_FILES.get(item.fspath.basename, 0)))
    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(
        reason="no GPU visible to TensorFlow (no machine of this project can run TF on a GPU)"
    )
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def warp_library():
    """The compiled adaptive-warp op module. `make test` builds it, so it must load."""
    from spiritnet_tf.ops import warp as aw

    library = aw.load_library()
    assert library is not None, f"compiled op missing: {aw._load_error}. Run `make ops`."
    return library


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path):
    """A script of the repository that is not a package module (``configs/...``,
    ``scripts/...``, ``benchmarks/...``: a path relative to the repository's root), imported
    as a module named after its file, so that tests call its functions."""
    import importlib.util

    name = os.path.splitext(os.path.basename(relative_path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_CONFIG = os.path.join(REPO, "configs", "tiny_test.json")
with open(TINY_CONFIG) as _file:
    _TINY = json.load(_file)
# Its model fields as `SpiritNet.from_preset` overrides (JSON lists as tuples).
_TINY_MODEL = {k: tuple(v) if isinstance(v, list) else v for k, v in _TINY["model"].items()}
# The tiny architecture of configs/tiny_test.json (its widths and one-level depth net, the
# depth net at the image's own size), for the tests that build their own models and pick
# their own rules on top of it.
TINY = {k: v for k, v in _TINY_MODEL.items()
        if k not in ("depth_side", "depth_every_step", "learning_rate")}


def _made_once(tmp_path_factory, name, make):
    """The path ``name`` in a folder of this test run, written by ``make(path)`` once.

    Under pytest-xdist the folder is the one above the workers' own temporary folders, so
    the first worker that needs the file makes it (holding a lock, which the others wait
    for) and the others read it; a run without workers uses its own temporary folder.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    root = tmp_path_factory.getbasetemp()
    if worker:
        root = root.parent
    path = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / f"{name}.done").exists():
            make(path)
            (root / f"{name}.done").touch()
    return path


@pytest.fixture(scope="session")
def tiny_spiritnet(tmp_path_factory):
    """A built, randomly initialised SpiritNet with the model config of configs/tiny_test.json.

    The same weights in every test process of a run (the first one saves its random
    initialisation, the others load it), so that the export made once per run
    (`tiny_export`) matches every process's model, and in every run (seeded: which
    process makes it, after which tests, changes from run to run, and the ONNX flows'
    largest difference from Keras's was 1.3e-3 px on one unseeded initialisation).
    Shared by the export and serving tests (read-only: do not train or change it).
    """
    import keras

    from spiritnet_tf.model import SpiritNet

    keras.utils.set_random_seed(0)
    model = SpiritNet.from_preset(_TINY["preset"], **_TINY_MODEL)
    model.build()
    model.load_weights(_made_once(tmp_path_factory, "tiny.weights.h5", model.save_weights))
    return model


@pytest.fixture(scope="session")
def tiny_keras(tiny_spiritnet, tmp_path_factory):
    """`tiny_spiritnet` saved as a .keras file, for the command lines that read one (read-only)."""
    return _made_once(tmp_path_factory, "tiny.keras", tiny_spiritnet.save)


# The one SavedModel export of the suite: sizes chosen so that every resize of
# test_export_savedmodel.py is an exact factor of 2.
EXPORT_WORKING_SIDE, EXPORT_MAX_OUTPUT_SIDE = 48, 96


@pytest.fixture(scope="session")
def tiny_export(tiny_keras, tmp_path_factory):
    """(version folder BASE/1, CLI arguments): `tiny_spiritnet` exported once per test run
    (one process makes it, the others wait for it and read it: `_made_once`) by
    `spiritnet_tf.export.savedmodel.main` (the command line), with its warm-up requests.
    Shared by the export and serving tests, since tracing the export is the slow part
    (read-only: write other exports elsewhere)."""
    from spiritnet_tf.export.savedmodel import main

    def export(base):
        assert main(_export_args(tiny_keras, base / "spiritnet" / "1")) == 0

    out = _made_once(tmp_path_factory, "export", export) / "spiritnet" / "1"
    return out, _export_args(tiny_keras, out)


def _export_args(weights, out):
    return ["--weights", str(weights), "--out", str(out),
            "--working-side", str(EXPORT_WORKING_SIDE),
            "--max-output-side", str(EXPORT_MAX_OUTPUT_SIDE)]


@contextlib.contextmanager
def functions_run_eagerly():
    """Runs every `tf.function` (Keras's train and predict steps included) eagerly inside
    the block: the same Python code without tracing its graph, which costs a minute or
    more per training graph on 2 cores. For tests whose point is a driver's bookkeeping
    (files, logs, resuming), not the traced step, which other tests run traced."""
    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(before)


@contextlib.contextmanager
def grappler_off():
    """Grappler's graph optimisations off inside the block (restored after): they change
    no result, and on 2 cores they cost a minute on a training graph and half of a
    SavedModel server's start (replaying the warm-up requests of the tiny export: 31-37 s
    with them, 16 s without). For tests of what the graphs compute, not how fast."""
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


@pytest.fixture
def bundled_manifest(tmp_path, monkeypatch):
    """``install(values)``: writes ``values`` as the bundled weights' MANIFEST.json (a file
    under ``tmp_path`` that `spiritnet_tf.config.DEFAULT_MANIFEST` then names)."""
    import json

    from spiritnet_tf import config

    path = tmp_path / "MANIFEST.json"
    monkeypatch.setattr(config, "DEFAULT_MANIFEST", str(path))

    def install(values):
        path.write_text(json.dumps(values))

    return install


@pytest.fixture
def eager_functions():
    """`functions_run_eagerly` for a whole test."""
    with functions_run_eagerly():
        yield
