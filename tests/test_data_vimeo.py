"""Vimeo-90K TFDS builder on a fake tree the test writes, and the paper's subset."""

import logging
import os

import imageio.v3 as iio
import numpy as np
import pytest

import spiritnet_tf.data.vimeo90k  # noqa: F401  (registers the builder)
from spiritnet_tf import cli
from spiritnet_tf.data import training_pipeline
from spiritnet_tf.data.teachers import DISTeacher
from spiritnet_tf.data.vimeo90k import (
    MANUAL_DOWNLOAD_INSTRUCTIONS,
    ManualDownloadError,
    Vimeo90kSeptuplet,
    load_vimeo,
    select_subset,
)

H, W = 32, 48
TRAIN = ["00001/0001", "00001/0002", "00002/0001"]
TEST = ["00003/0001", "00003/0007"]


def _write_tree(root, ids, seed=0):
    rng = np.random.default_rng(seed)
    for sample_id in ids:
        folder = os.path.join(root, "sequences", sample_id)
        os.makedirs(folder)
        base = (rng.random((H + 8, W + 8, 3)) * 255).astype(np.uint8)
        for k in range(1, 8):  # content moving right by 1 px per frame
            iio.imwrite(os.path.join(folder, f"im{k}.png"), base[4:4 + H, 8 - k:8 - k + W])


@pytest.fixture(scope="module")
def vimeo_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("manual") / "vimeo_septuplet"
    _write_tree(str(root), TRAIN + TEST)
    (root / "sep_trainlist.txt").write_text("\n".join(TRAIN) + "\n\n")
    (root / "sep_testlist.txt").write_text("\n".join(TEST) + "\n")
    return root


def _build(manual_dir, data_dir, **kwargs):
    import tensorflow_datasets as tfds

    builder = Vimeo90kSeptuplet(config="full", data_dir=str(data_dir), **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def test_builder_full_config_from_fake_tree(vimeo_tree, tmp_path, capsys):
    import tensorflow_datasets as tfds

    # Built through the command line; the manual dir's child vimeo_septuplet/ is found.
    assert cli.main(["data", "vimeo", "--manual-dir", str(vimeo_tree.parent),
                     "--data-dir", str(tmp_path), "--config", "full"]) == 0
    assert "train: 3 septuplets" in capsys.readouterr().out
    # Registered under its name: tfds.builder finds the prepared data.
    builder = tfds.builder("vimeo90k_septuplet/full", data_dir=str(tmp_path))
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 3, "test": 2}
    examples = list(builder.as_dataset(split="train").as_numpy_iterator())
    assert sorted(ex["id"].decode() for ex in examples) == TRAIN
    teacher = DISTeacher()
    for ex in examples:
        assert ex["frames"].shape == (7, H, W, 3) and ex["frames"].dtype == np.uint8
        assert ex["flows"].shape == (6, H, W, 2) and ex["flows"].dtype == np.float16
        folder = vimeo_tree / "sequences" / ex["id"].decode()
        np.testing.assert_array_equal(ex["frames"][3], iio.imread(folder / "im4.png"))
        # The stored flows are the teacher's F_{k+1->k} (float16-rounded).
        np.testing.assert_allclose(ex["flows"][2], teacher.backward_flow(
            ex["frames"][2], ex["frames"][3]), atol=2e-2, rtol=1e-3)
    # The pipeline-facing loader gives float32 flows.
    (sample,) = load_vimeo("test[:1]", data_dir=str(tmp_path), config="full").take(1)
    assert sample["flows"].dtype.name == "float32" and sample["frames"].shape == (7, H, W, 3)
    # ... and feeds the training pipeline (no depth for Vimeo).
    inputs, targets = next(iter(training_pipeline(
        load_vimeo("train", data_dir=str(tmp_path), config="full"), 2, crop_size=(24, 40))))
    assert set(inputs) == {"image", "flow0"} and targets["flows"].shape == (2, 5, 24, 40, 2)


def test_builder_spiritnet_config_uses_subset(vimeo_tree, tmp_path, monkeypatch):
    from spiritnet_tf.data import vimeo90k

    small = lambda train, test: select_subset(train, test, 2, 1, 1)  # noqa: E731
    monkeypatch.setattr(vimeo90k, "select_subset", small)
    import tensorflow_datasets as tfds

    builder = Vimeo90kSeptuplet(data_dir=str(tmp_path))  # default config: spiritnet
    assert builder.builder_config.name == "spiritnet"
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(vimeo_tree)))
    expected = small(TRAIN, TEST)
    for split in ("train", "validation", "test"):
        ids = [ex["id"].decode() for ex in builder.as_dataset(split=split).as_numpy_iterator()]
        assert sorted(ids) == sorted(expected[split])


def test_builder_skips_or_fails_on_corrupt_frame(vimeo_tree, tmp_path, caplog):
    manual = tmp_path / "manual"
    root = manual / "vimeo_septuplet"
    _write_tree(str(root), TRAIN[:2] + TEST[:1], seed=1)
    (root / "sep_trainlist.txt").write_text("\n".join(TRAIN[:2]) + "\n")
    (root / "sep_testlist.txt").write_text(TEST[0] + "\n")
    bad = root / "sequences" / TRAIN[1] / "im5.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    with caplog.at_level(logging.WARNING, logger="spiritnet_tf.data"):
        builder = _build(manual, tmp_path / "skip", on_error="skip")
    assert builder.info.splits["train"].num_examples == 1
    assert str(bad) in caplog.text
    with pytest.raises(ValueError, match=f"cannot read {bad}"):
        _build(manual, tmp_path / "fail")
    with pytest.raises(ValueError, match="on_error"):
        Vimeo90kSeptuplet(config="full", data_dir=str(tmp_path), on_error="ignore")


def test_missing_manual_dir_prints_instructions(tmp_path, capsys):
    status = cli.main(["data", "vimeo", "--manual-dir", str(tmp_path / "nowhere"),
                       "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert status == 2
    assert "vimeo_septuplet.zip" in err and "sep_trainlist.txt" in err
    assert str(tmp_path / "nowhere") in err and "Traceback" not in err
    # The builder itself raises the same instructions (e.g. when used through TFDS).
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("not vimeo")
    with pytest.raises(ManualDownloadError) as info:
        _build(tmp_path / "empty", tmp_path / "data")
    assert MANUAL_DOWNLOAD_INSTRUCTIONS in str(info.value)


def test_select_subset_disjoint_deterministic():
    rng = np.random.default_rng(123)
    train = [f"{a:05d}/{b:04d}" for a in range(1, 101) for b in range(1, 81)]  # 8000 ids
    test = [f"{a:05d}/{b:04d}" for a in range(200, 210) for b in range(1, 11)]  # 100 ids
    subset = select_subset(train, test)
    assert [len(subset[s]) for s in ("train", "validation", "test")] == [5000, 600, 40]
    assert len(set(subset["train"])) == 5000 and len(set(subset["validation"])) == 600
    assert not set(subset["train"]) & set(subset["validation"])
    assert set(subset["train"]) | set(subset["validation"]) <= set(train)
    assert set(subset["test"]) <= set(test) and len(set(subset["test"])) == 40
    # Independent of the list's order (it is sorted first) and repeatable.
    shuffled = select_subset(list(rng.permutation(train)), list(rng.permutation(test)))
    assert shuffled == subset
    # The documented recipe, spelled out.
    order = np.random.default_rng(0).permutation(len(train))
    assert subset["validation"][0] == sorted(train)[order[5000]]
    assert select_subset(train, test, seed=1)["train"] != subset["train"]
    with pytest.raises(ValueError, match="train list has 8000 ids, need 8000 \\+ 600"):
        select_subset(train, test, num_train=8000)
