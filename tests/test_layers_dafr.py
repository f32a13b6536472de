"""DAFR: clustering, per-cluster motion, controls, seeding, thresholds (docs/design.md §3.2)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.layers import BILINEAR_KERNEL, DAFR, DAFRConfig, TopKGapThresholds
from spiritnet_tf.ops import adaptive_warp

QUIET = {"magnitude_noise": 0.0, "angle_noise_deg": 0.0}


def planes(levels, widths=None, batch=1, height=24):
    """Vertical bands of constant inverse depth: band i has z = levels[i]."""
    widths = widths or [20] * len(levels)
    row = np.concatenate([np.full(w, v, np.float32) for v, w in zip(levels, widths)])
    return np.tile(row[None, None, :, None], (batch, height, 1, 1))


def band_slices(widths):
    edges = np.cumsum([0] + list(widths))
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def motion(flow):
    return -np.asarray(flow)  # M = -F (docs/design.md §2)


def angle_deg(m):
    return np.degrees(np.arctan2(m[..., 1], m[..., 0]))


def test_three_flat_planes_three_clusters_coherent_nearer_faster():
    z = planes([0.1, 0.5, 1.0], batch=2)
    dafr = DAFR()
    labels = dafr.cluster(z).numpy()[..., 0]
    for s, expected in zip(band_slices([20] * 3), (0, 1, 2)):
        assert np.all(labels[:, :, s] == expected)  # exactly three, far = 0
    m = motion(dafr(z, seed=7))
    speeds, spreads = [], []
    for s in band_slices([20] * 3):
        band = m[:, :, s].reshape(2, -1, 2)
        mean = band.mean(axis=1)
        speeds.append(np.linalg.norm(mean, axis=-1))
        # Coherent: every pixel's direction within a few degrees of its cluster's mean.
        diff = (angle_deg(band) - angle_deg(mean)[:, None] + 180) % 360 - 180
        spreads.append(np.abs(diff).max())
        rel = np.linalg.norm(band - mean[:, None], axis=-1) / speeds[-1][:, None]
        assert rel.max() < 0.35
    assert max(spreads) < 12.0
    speeds = np.stack(speeds, axis=1)  # [B, cluster]
    assert np.all(np.diff(speeds, axis=1) > 0), speeds


def test_without_noise_each_cluster_moves_as_one():
    z = planes([0.1, 0.5, 1.0])
    m = motion(DAFR(DAFRConfig(**QUIET))(z, seed=1))
    for s in band_slices([20] * 3):
        band = m[0, :, s].reshape(-1, 2)
        np.testing.assert_allclose(band, np.broadcast_to(band[0], band.shape), atol=1e-6)


@pytest.mark.parametrize("direction", [0.0, 90.0])
def test_direction_sets_motion_angle_within_15_degrees(direction):
    z = planes([0.05, 0.4, 1.0], batch=3)
    dafr = DAFR()
    for seed in range(4):
        flow = dafr(z, seed=seed, direction=direction).numpy()
        m = motion(flow)
        for s in band_slices([20] * 3):
            mean = m[:, :, s].reshape(3, -1, 2).mean(axis=1)
            diff = (angle_deg(mean) - direction + 180) % 360 - 180
            assert np.all(np.abs(diff) <= 15.0), diff
        per_pixel = (angle_deg(m) - direction + 180) % 360 - 180
        assert np.abs(per_pixel).max() <= 15.0 + 1e-3
        if direction == 0.0:
            assert np.all(flow[..., 0] < 0)  # moving right = backward dx < 0
        else:
            assert np.all(flow[..., 1] < 0)


def test_direction_zero_moves_content_right_when_warped():
    # End-to-end sign check: warping with F0 (backward flow) moves a bright column right.
    z = np.full([1, 16, 32, 1], 1.0, np.float32)
    cfg = DAFRConfig(max_turn_deg=0.0, f0_pixels=2.0, sigmoid_slope=50.0, **QUIET)
    flow = DAFR(cfg)(z, seed=0, direction=0.0)
    image = np.zeros([1, 16, 32, 3], np.float32)
    image[:, :, 10] = 1.0
    kernel = np.broadcast_to(BILINEAR_KERNEL, (1, 16, 32, 16))
    warped = adaptive_warp(image, flow, kernel).numpy()[0, 8, :, 0]
    np.testing.assert_allclose(np.sum(warped * np.arange(32)) / np.sum(warped), 12.0, atol=1e-3)


def test_random_direction_covers_circle_and_magnitude_scales():
    z = planes([0.1, 0.5, 1.0])
    dafr = DAFR(DAFRConfig(**QUIET))
    angles = [angle_deg(motion(dafr(z, seed=s))[0, 0, 50]) for s in range(12)]
    assert np.ptp(angles) > 90  # phi ~ U(0, 360): not stuck near one direction
    one = dafr(z, seed=3, direction=45.0).numpy()
    two = dafr(z, seed=3, direction=45.0, magnitude=2.0).numpy()
    np.testing.assert_allclose(two, 2 * one, rtol=1e-5, atol=1e-6)
    # Per-image controls: direction and magnitude may be [B] vectors.
    both = motion(dafr(np.concatenate([z, z]), seed=3, direction=[0.0, 90.0], magnitude=[1, 2]))
    speed = np.linalg.norm(both, axis=-1)
    np.testing.assert_allclose(speed[1], 2 * speed[0], rtol=1e-5)
    assert np.abs(angle_deg(both[0])).max() <= 15.0 + 1e-3
    assert np.abs(angle_deg(both[1]) - 90.0).max() <= 15.0 + 1e-3
    # f0 (the largest motion) defaults to 1.5 % of the width.
    top = np.linalg.norm(one, axis=-1).max()
    assert 0.5 * 0.015 * 60 < top <= 0.015 * 60


def test_phi_per_cluster_draws_one_direction_per_cluster():
    z = planes([0.1, 0.5, 1.0])
    dafr = DAFR(DAFRConfig(phi_per_cluster=True, max_turn_deg=0.0, **QUIET))
    spreads = []
    for seed in range(3):
        m = motion(dafr(z, seed=seed))[0, 0]
        angles = np.array([angle_deg(m[s].mean(axis=0)) for s in band_slices([20] * 3)])
        spreads.append(np.ptp(angles))
        for s in band_slices([20] * 3):  # still one motion per cluster
            np.testing.assert_allclose(m[s], np.broadcast_to(m[s][0], m[s].shape), atol=1e-6)
    assert max(spreads) > 30.0


def test_same_seed_same_flow_other_seed_different():
    z = planes([0.1, 0.5, 1.0], batch=2)
    dafr = DAFR()
    a, b, c = dafr(z, seed=11), dafr(z, seed=11), dafr(z, seed=12)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(a.numpy() - c.numpy()).max() > 1e-3
    graph = tf.function(lambda z, s: dafr(z, s))
    np.testing.assert_array_equal(graph(tf.constant(z), tf.constant(11, tf.int64)).numpy(), a)


def test_mask_region_has_zero_flow():
    z = planes([0.1, 0.5, 1.0])
    mask = np.zeros_like(z)
    mask[:, 5:15, 10:50] = 1.0
    flow = DAFR()(z, seed=2, direction=30.0, mask=mask).numpy()
    assert np.all(flow[:, 5:15, 10:50] == 0.0)
    assert np.all(np.linalg.norm(flow[:, 16:], axis=-1) > 0)


def test_min_gap_decides_whether_close_planes_split():
    z = planes([0.001, 0.5, 0.54, 1.0])  # rescaled gaps ~0.5, 0.04, 0.46
    count = lambda cfg: len(np.unique(DAFR(cfg).cluster(z).numpy()))
    assert count(DAFRConfig(min_gap=0.05)) == 3  # the 0.04 gap is too narrow to cut
    assert count(DAFRConfig(min_gap=0.03)) == 4
    assert count(DAFRConfig(min_gap=0.03, max_cuts=2)) == 3  # at most k cuts
    assert count(DAFRConfig(min_gap=0.6, quantile_fallback=False)) == 1  # no gap qualifies
    assert count(DAFRConfig(min_gap=0.6)) == 4  # then quantile cuts (one per equal share)


def test_min_share_merges_small_cluster_into_closer_neighbour():
    widths = [60, 1, 59]  # the middle plane holds 1/120 of the pixels
    z = planes([0.1, 0.7, 1.0], widths=widths)
    bands = band_slices(widths)
    labels = DAFR(DAFRConfig(min_share=0.02)).cluster(z).numpy()[0, :, :, 0]
    assert len(np.unique(labels)) == 2
    # 0.7 is closer to 1.0 than to 0.1: it joins the near cluster.
    assert np.all(labels[:, bands[1]] == labels[0, bands[2].start])
    assert np.all(labels[:, bands[0]] != labels[0, bands[2].start])
    labels = DAFR(DAFRConfig(min_share=0.005)).cluster(z).numpy()
    assert len(np.unique(labels)) == 3


def test_flat_depth_is_one_cluster():
    z = np.full([1, 32, 32, 1], 0.3, np.float32)
    assert np.all(DAFR().cluster(z).numpy() == 0)
    flow = DAFR(DAFRConfig(**QUIET))(z, seed=0).numpy()
    assert np.all(np.isfinite(flow))


@keras.saving.register_keras_serializable(package="spiritnet_tests")
class FixedCut:
    """A replacement strategy: one cut at a fixed rescaled value."""

    max_cuts = 1

    def __init__(self, at=0.5):
        self.at = at

    def __call__(self, sorted_values):
        return tf.fill(tf.stack([tf.shape(sorted_values)[0], 1]), self.at)

    def get_config(self):
        return {"at": self.at}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def test_thresholds_strategy_is_replaceable_and_serialised():
    z = planes([0.1, 0.5, 1.0])  # rescaled 0, 0.44, 1
    dafr = DAFR(thresholds=FixedCut(0.3))
    labels = dafr.cluster(z).numpy()[0, 0, :, 0]
    np.testing.assert_array_equal(labels, [0] * 20 + [1] * 40)
    clone = DAFR.from_config(dafr.get_config())
    assert isinstance(clone.thresholds, FixedCut) and clone.thresholds.at == 0.3
    np.testing.assert_array_equal(clone(z, seed=4).numpy(), dafr(z, seed=4).numpy())


def test_config_round_trip_and_validation():
    cfg = DAFRConfig(max_cuts=2, min_gap=0.1, f0_pixels=3.0, phi_per_cluster=True)
    assert DAFRConfig.from_dict(cfg.to_dict()) == cfg
    assert DAFRConfig().to_dict()["max_cuts"] == 3
    layer = DAFR.from_config(DAFR(cfg).get_config())
    assert layer.config == cfg and isinstance(layer.thresholds, TopKGapThresholds)
    assert layer.thresholds.max_cuts == 2 and layer.thresholds.min_gap == 0.1
    with pytest.raises(ValueError, match="unknown field"):
        DAFRConfig.from_dict({"k": 3})
    with pytest.raises(ValueError, match="min_share"):
        DAFRConfig(min_share=1.5)
    assert {f.name for f in dataclasses.fields(DAFRConfig)} >= {
        "max_cuts", "min_gap", "min_share", "sigmoid_slope", "sigmoid_center",
        "turn_gain", "max_turn_deg", "f0_fraction", "magnitude_noise", "angle_noise_deg",
    }


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="`z` must be rank 4"):
        DAFR()(np.ones([4, 4, 1], np.float32), seed=0)
    with pytest.raises(ValueError, match="`z` must have 1 channel"):
        DAFR()(np.ones([1, 4, 4, 2], np.float32), seed=0)
    with pytest.raises(ValueError, match="`seed` must be a scalar"):
        DAFR()(np.ones([1, 4, 4, 1], np.float32), seed=[1, 2])
    with pytest.raises(ValueError, match="`mask` must have 1 channel"):
        DAFR()(np.ones([1, 4, 4, 1], np.float32), seed=0, mask=np.ones([1, 4, 4, 3], np.float32))


# ----------------------------------------------------------------------------- speed rule


def _cluster_speeds(dafr, z):
    """Mean speed of each cluster label present, ascending label (far first)."""
    labels = dafr.cluster(z).numpy()[0, ..., 0]
    speed = np.linalg.norm(dafr(z, seed=0).numpy()[0], axis=-1)
    return {int(c): float(speed[labels == c].mean()) for c in np.unique(labels)}


def test_linear_speed_rule_goes_from_f0_over_r_to_f0():
    f0 = 4.0
    cfg = DAFRConfig(f0_pixels=f0, near_far_ratio=3.0, **QUIET)
    assert cfg.speed_rule == "linear"  # the default of new configs
    dafr = DAFR(cfg)
    levels = [1e-3, 0.25, 0.5, 1.0]
    speeds = _cluster_speeds(dafr, planes(levels))
    assert sorted(speeds) == [0, 1, 2, 3]
    expected = [f0 * (1 / 3 + (2 / 3) * z) for z in levels]
    np.testing.assert_allclose([speeds[c] for c in range(4)], expected, rtol=1e-3)
    assert np.all(np.diff([speeds[c] for c in range(4)]) > 0)  # monotone in zbar
    # Other ratios: R = 1 moves everything alike; the nearest always at f0.
    same = _cluster_speeds(DAFR(DAFRConfig(f0_pixels=f0, near_far_ratio=1.0, **QUIET)), planes(levels))
    np.testing.assert_allclose(list(same.values()), f0, rtol=1e-5)
    with pytest.raises(ValueError, match="near_far_ratio"):
        DAFRConfig(near_far_ratio=0.5)
    with pytest.raises(ValueError, match="speed_rule"):
        DAFRConfig(speed_rule="cubic")


def test_legacy_sigmoid_rule_is_kept_for_pinned_weights():
    from spiritnet_tf.layers.dafr import LEGACY_RULE

    cfg = DAFRConfig(f0_pixels=4.0, **LEGACY_RULE, **QUIET)
    speeds = _cluster_speeds(DAFR(cfg), planes([0.1, 0.5, 1.0]))
    sigmoid = [4.0 / (1 + np.exp(-8 * (z - 0.5))) for z in (0.1, 0.5, 1.0)]
    np.testing.assert_allclose([speeds[c] for c in range(3)], sigmoid, rtol=1e-3)


def test_continuous_ramp_gives_k_plus_one_clusters_and_flat_one_speed():
    ramp = np.tile(np.linspace(0.05, 1.0, 64, dtype=np.float32)[None, None, :, None], (1, 32, 1, 1))
    dafr = DAFR(DAFRConfig(**QUIET))
    labels = dafr.cluster(ramp).numpy()[0, ..., 0]
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]
    shares = np.bincount(labels.ravel()) / labels.size
    np.testing.assert_allclose(shares, 0.25, atol=0.05)  # quantile cuts: equal shares
    assert np.all(np.diff(labels[0]) >= 0)  # ordered along the ramp, far (left) first
    speeds = _cluster_speeds(dafr, ramp)
    assert np.all(np.diff([speeds[c] for c in range(4)]) > 0)
    # Without the fallback (the earlier rule) the same ramp is one cluster.
    legacy = DAFR(DAFRConfig(quantile_fallback=False, **QUIET))
    assert np.unique(legacy.cluster(ramp).numpy()).tolist() == [0]
    # A flat z: one cluster, one speed everywhere.
    flat = np.full([1, 32, 40, 1], 0.4, np.float32)
    assert np.unique(dafr.cluster(flat).numpy()).tolist() == [0]
    speed = np.linalg.norm(dafr(flat, seed=1).numpy(), axis=-1)
    np.testing.assert_allclose(speed, speed.flat[0], rtol=1e-5)


def test_smoothing_keeps_noise_from_scattering_clusters():
    rng = np.random.default_rng(0)
    z = planes([0.3, 0.7], widths=[32, 32], height=32)
    noisy = z + rng.normal(0, 0.12, z.shape).astype(np.float32)  # pixel noise around two planes
    scattered = DAFR(DAFRConfig(max_cuts=1, smooth_size=1, **QUIET)).cluster(noisy).numpy()[0, ..., 0]
    smooth = DAFR(DAFRConfig(max_cuts=1, **QUIET)).cluster(noisy).numpy()[0, ..., 0]

    def mislabelled(labels):  # pixels whose label differs from their plane's majority
        return sum(np.mean(labels[:, s] != np.bincount(labels[:, s].ravel()).argmax())
                   for s in band_slices([32, 32]))

    assert mislabelled(smooth) < 0.02
    assert mislabelled(scattered) > 5 * max(mislabelled(smooth), 0.01)
