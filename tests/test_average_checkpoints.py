"""scripts/average_checkpoints.py: the mean of a run's per-epoch checkpoint files."""

import os

import h5py
import numpy as np
import pytest

from conftest import load_script

average_checkpoints = load_script(os.path.join("scripts", "average_checkpoints.py"))


def _checkpoint(path, kernel, step):
    with h5py.File(path, "w") as f:
        f["layers/conv/vars/0"] = np.asarray(kernel, np.float32)
        f["optimizer/vars/0"] = np.int64(step)


def test_floats_are_averaged_counters_come_from_the_last_and_nothing_is_overwritten(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for epoch, value in [(1, 9.0), (2, 1.0), (3, 2.0), (4, 6.0)]:
        _checkpoint(run / "checkpoints" / f"epoch-{epoch:03d}.weights.h5",
                    [[value, -value], [0.5, value]], step=10 * epoch)
    average_checkpoints.main([str(run), "--first", "2", "--last", "4"])
    out = run / "checkpoints" / "average-002-004.weights.h5"
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["layers/conv/vars/0"][...], [[3.0, -3.0], [0.5, 3.0]])
        assert f["layers/conv/vars/0"].dtype == np.float32
        assert f["optimizer/vars/0"][()] == 40
    with pytest.raises(SystemExit, match="exists"):
        average_checkpoints.main([str(run), "--first", "2", "--last", "4"])
    with pytest.raises(SystemExit, match="epoch-005"):
        average_checkpoints.main([str(run), "--first", "4", "--last", "5"])
