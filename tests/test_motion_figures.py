"""spiritnet_tf.evaluation.motion: rank correlation, outside share, figures of an animation."""

import numpy as np
import pytest

from spiritnet_tf.evaluation.motion import motion_figures, outside_share, spearman


def test_spearman_ranks_ties_and_constants():
    x = np.arange(50, dtype=np.float64)
    assert spearman(x, np.exp(x / 10)) == pytest.approx(1.0)  # any increasing map
    assert spearman(x, -x ** 3) == pytest.approx(-1.0)
    assert spearman(x, np.ones(50)) == 0.0
    # Ties take their mean rank: ranks of b are 0.5, 0.5, 2, 3 -> Pearson of the ranks.
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 5.0, 6.0, 7.0])
    ra, rb = np.array([0, 1, 2, 3.0]), np.array([0.5, 0.5, 2, 3])
    assert spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert spearman(x, x[::-1], x < 10) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        spearman(x, x[:3])


def test_outside_share_finds_content_from_beyond_the_border():
    rng = np.random.default_rng(0)
    coarse = rng.random((12, 24, 3))
    import cv2

    big = (cv2.resize(coarse, (112, 64), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)
    photo, moved = big[:, 16:], big[:, :96]  # the camera moved left: 16 new columns
    assert outside_share(photo, photo) < 0.01
    # 16 / 96 = 0.167 of the frame is new; DIS, which must extrapolate into the new band,
    # finds 0.083 of it here: the measure is an estimate that undercounts, never zero.
    assert 0.05 < outside_share(moved, photo) < 0.2


def test_motion_figures_of_a_depth_ordered_animation():
    from spiritnet_tf.animation import Animation

    h, w = 32, 48
    z = np.tile(np.linspace(0.1, 1.0, w, dtype=np.float32)[None, :, None], (h, 1, 1))
    flows = np.zeros((3, h, w, 2), np.float32)
    flows[..., 0] = -2.0 * z[..., 0]  # content moves right, near (right) twice as fast as far
    photo = np.random.default_rng(1).random((h, w, 3)).astype(np.float32)
    working = np.repeat(photo[None], 4, axis=0)
    anim = Animation(photo, working, flows, z, edges="extend")
    figures = motion_figures(anim, measure_outside=False)
    assert figures["spearman_f1_z"] == pytest.approx(1.0) and figures["spearman_flast_z"] == pytest.approx(1.0)
    assert figures["p90_p10_f1"] == pytest.approx(np.percentile(z, 90) / np.percentile(z, 10), rel=1e-4)
    assert figures["median_motion_px"] > 2.0 and figures["zoom"] == 1.0
    # The content moves right by 2 z px a step: the left columns sample beyond the border.
    g_last = 3 * 2.0 * z[..., 0]  # composed |G_3| of this constant-in-time flow
    expected = np.mean(np.arange(w)[None, :] - g_last < 0)
    assert figures["sample_outside_share"] == pytest.approx(expected, abs=1 / w)
    zoomed = motion_figures(Animation(photo, working, flows, z), measure_outside=False)
    assert zoomed["zoom"] > 1.0 and zoomed["sample_outside_share"] == 0.0
