"""DAFI: constant motion carried on, Eq. 1 on collisions, holes, gradients (docs/design.md §3.3)."""

import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.layers import DAFI


def test_constant_flow_is_carried_exactly_away_from_borders():
    rng = np.random.default_rng(0)
    flow = np.broadcast_to(np.array([1.3, -1.6]), (2, 12, 14, 2)).copy()
    z = rng.uniform(0.05, 1.0, (2, 12, 14, 1))
    next_flow, holes = DAFI(dtype="float64")(flow, z)
    np.testing.assert_allclose(next_flow.numpy()[:, 2:-2, 2:-2], flow[:, 2:-2, 2:-2], atol=1e-12)
    holes = holes.numpy()[..., 0]
    # Content moves left by 1.3 and down by 1.6: nothing lands in the last column or the
    # top row; everything else is covered.
    expected = np.zeros((12, 14))
    expected[:, -1] = 1
    expected[0, :] = 1
    np.testing.assert_array_equal(holes, np.broadcast_to(expected, holes.shape))
    assert np.all(next_flow.numpy()[holes == 1] == 0)


def test_collision_matches_eq1_by_hand():
    h, w = 3, 6
    flow = np.zeros((1, h, w, 2))
    flow[..., 0] = 20.0  # every other source lands outside the frame and is dropped
    z = np.full((1, h, w, 1), 0.5)
    fa, fb = np.array([-1.25, -1.0]), np.array([1.5, 1.0])
    flow[0, 0, 1], z[0, 0, 1] = fa, 0.8  # lands at (x, y) = (2.25, 1.0)
    flow[0, 2, 4], z[0, 2, 4] = fb, 0.2  # lands at (2.5, 1.0)
    next_flow, holes = DAFI(dtype="float64")(flow, z)
    next_flow, holes = next_flow.numpy()[0], holes.numpy()[0, ..., 0]
    # Eq. 1: sum over sources of w*z*F / sum of w*z, w = bilinear weight of the tap.
    wa2, wb2 = 0.75 * 0.8, 0.5 * 0.2
    wa3, wb3 = 0.25 * 0.8, 0.5 * 0.2
    np.testing.assert_allclose(next_flow[1, 2], (wa2 * fa + wb2 * fb) / (wa2 + wb2), atol=1e-12)
    np.testing.assert_allclose(next_flow[1, 3], (wa3 * fa + wb3 * fb) / (wa3 + wb3), atol=1e-12)
    expected_holes = np.ones((h, w))
    expected_holes[1, 2:4] = 0
    np.testing.assert_array_equal(holes, expected_holes)
    next_flow[1, 2:4] = 0
    assert np.all(next_flow == 0)


def test_nearer_source_wins_collision_weight():
    # Two sources landing exactly on the same pixel: the result is their z-weighted mean.
    flow = np.zeros((1, 1, 4, 2))
    flow[0, 0, 0] = [-2.0, 0.0]  # x=0 -> 2
    flow[0, 0, 3] = [1.0, 0.0]  # x=3 -> 2
    flow[0, 0, 1:3] = [9.0, 0.0]  # dropped
    z = np.array([0.9, 0.5, 0.5, 0.1]).reshape(1, 1, 4, 1)
    next_flow, _ = DAFI(dtype="float64")(flow, z)
    expected = (0.9 * -2.0 + 0.1 * 1.0) / (0.9 + 0.1)
    np.testing.assert_allclose(next_flow.numpy()[0, 0, 2, 0], expected, atol=1e-12)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    h, w = 4, 5
    # Integer part in {-1, 0, 1}, fractional part kept away from 0 and 1 so the taps stay put.
    flow = rng.integers(-1, 2, (1, h, w, 2)) + rng.uniform(0.2, 0.8, (1, h, w, 2))
    z = rng.uniform(0.2, 1.0, (1, h, w, 1))
    layer = DAFI(dtype="float64")
    z_t, flow_t = tf.constant(z), tf.constant(flow)
    for fn, x in (
        (tf.function(lambda f: layer(f, z_t)[0]), flow),
        (tf.function(lambda zz: layer(flow_t, zz)[0]), z),
    ):
        analytic, numeric = tf.test.compute_gradient(fn, [tf.constant(x)], delta=1e-6)
        assert np.abs(analytic[0]).max() > 0.1
        np.testing.assert_allclose(analytic[0], numeric[0], atol=1e-5)


def test_shapes_graph_mode_and_bad_inputs():
    layer = DAFI()
    fn = tf.function(layer, input_signature=[
        tf.TensorSpec([None, None, None, 2]), tf.TensorSpec([None, None, None, 1])])
    next_flow, holes = fn(tf.zeros([2, 8, 10, 2]), tf.ones([2, 8, 10, 1]))
    assert next_flow.shape == (2, 8, 10, 2) and holes.shape == (2, 8, 10, 1)
    assert holes.dtype == tf.float32 and np.all(holes.numpy() == 0)
    with pytest.raises(ValueError, match="`flow` must have 2 channel"):
        layer(tf.zeros([1, 4, 4, 3]), tf.ones([1, 4, 4, 1]))
    with pytest.raises(ValueError, match="`inverse_depth` must be rank 4"):
        layer(tf.zeros([1, 4, 4, 2]), tf.ones([4, 4, 1]))


def test_fill_holes_keeps_data_and_fills_holes_from_their_neighbours():
    from spiritnet_tf.layers.dafi import fill_holes

    rng = np.random.default_rng(3)
    values = rng.normal(size=(1, 20, 30, 2))
    holes = np.zeros((1, 20, 30, 1))
    holes[:, :, :5] = 1  # a band at the left border, as a rightward pan uncovers
    holes[:, 8:11, 14:17] = 1  # and a hole inside
    filled = fill_holes(tf.constant(values * (1 - holes)), tf.constant(holes)).numpy()
    np.testing.assert_array_equal(filled[holes[..., 0] == 0], values[holes[..., 0] == 0])
    assert np.all(np.isfinite(filled)) and np.all(filled[holes[..., 0] == 1] != 0)
    # a hole in a constant field takes the constant; in a ramp, a value inside its range
    constant = np.full((1, 20, 30, 2), 2.5) * (1 - holes)
    np.testing.assert_allclose(fill_holes(tf.constant(constant), tf.constant(holes)).numpy(),
                               np.full((1, 20, 30, 2), 2.5), atol=1e-12)
    ramp = np.broadcast_to(np.arange(30.0)[None, None, :, None], (1, 20, 30, 2)) * (1 - holes)
    band = fill_holes(tf.constant(ramp), tf.constant(holes)).numpy()[:, :, :5]
    assert np.all((band >= 5) & (band <= 29))  # from the data beside it, not 0
    # nothing valid: zeros, not NaN
    np.testing.assert_array_equal(fill_holes(tf.zeros([1, 8, 8, 2]), tf.ones([1, 8, 8, 1])), 0)


def test_dafi_fill_rule_changes_only_the_holes():
    rng = np.random.default_rng(4)
    flow = np.broadcast_to(np.array([-2.2, 0.4]), (2, 12, 16, 2)).copy()
    flow += rng.normal(scale=0.3, size=flow.shape)
    z = rng.uniform(0.1, 1.0, (2, 12, 16, 1))
    zero, holes = DAFI(dtype="float64")(flow, z)
    filled, holes_fill = DAFI(holes="fill", dtype="float64")(flow, z)
    holes = holes.numpy()[..., 0] == 1
    np.testing.assert_array_equal(holes_fill.numpy()[..., 0] == 1, holes)
    assert holes[:, :, 0].all()  # the band the pan uncovers at the left border
    np.testing.assert_array_equal(filled.numpy()[~holes], zero.numpy()[~holes])
    # the band moves with its neighbours instead of standing still
    np.testing.assert_allclose(filled.numpy()[holes][:, 0], -2.2, atol=1.0)
    assert DAFI(holes="fill").get_config()["holes"] == "fill"
    with pytest.raises(ValueError, match="holes must be one of"):
        DAFI(holes="nearest")


def test_hole_rule_is_a_config_choice_and_old_bundled_weights_keep_zero(bundled_manifest):
    from spiritnet_tf.config import SpiritNetConfig, bundled_overrides
    from spiritnet_tf.layers.cell import SpiritNetCell

    assert SpiritNetConfig().dafi_holes == "fill"
    bundled_manifest({"model": {"depth_width": 0.25}})
    assert bundled_overrides()["dafi_holes"] == "zero"  # a manifest that predates the field
    bundled_manifest({"model": {"dafi_holes": "fill"}})
    assert bundled_overrides()["dafi_holes"] == "fill"
    assert SpiritNetCell(SpiritNetConfig(dafi_holes="zero")).dafi.holes == "zero"
    with pytest.raises(ValueError, match="dafi_holes"):
        SpiritNetConfig(dafi_holes="nearest")
