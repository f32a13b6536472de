"""Teacher flows: DIS accuracy on known sub-pixel shifts and the backward sign."""

import cv2
import numpy as np
import pytest

from spiritnet_tf.data.teachers import DISTeacher, FlowTeacher, get_teacher


def _texture(seed, height=96, width=128):
    """Band-limited colour noise (a textured, smooth image) as uint8 RGB."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    for cell in (3, 6, 12, 24):
        grid = rng.standard_normal((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        img += cv2.resize(grid, ((width // cell + 2) * cell, (height // cell + 2) * cell),
                          interpolation=cv2.INTER_CUBIC)[:height, :width]
    img = (img - img.min()) / (img.max() - img.min())
    return np.round(img * 255).astype(np.uint8)


def _moved(image, dx, dy):
    """The image with its content moved by (dx, dy) px: out(x) = image(x - d)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)


@pytest.mark.parametrize("dx,dy", [(2.0, 0.0), (0.5, -0.25), (1.3, 0.7), (-0.75, 1.6),
                                   (3.4, -2.2), (-5.0, 1.5)])
def test_dis_recovers_subpixel_shift_as_backward_flow(dx, dy):
    earlier = _texture(0)
    later = _moved(earlier, dx, dy)
    flow = DISTeacher().backward_flow(earlier, later)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    inner = flow[10:-10, 10:-10]
    # Backward: later(x) = earlier(x + F), content moved by +d so F = -d.
    epe = np.linalg.norm(inner - np.array([-dx, -dy]), axis=-1).mean()
    # A quarter of the shift (at most 0.15 px): a flow of half the size (error |d| / 2)
    # or zero fails it. Measured (OpenCV 4, this texture): 0.0004 to 0.098 px.
    bound = min(0.15, 0.25 * np.hypot(dx, dy))
    assert epe < bound, (epe, bound)
    half = np.linalg.norm(inner / 2 - np.array([-dx, -dy]), axis=-1).mean()
    assert half > bound, (half, bound)


def test_dis_sign_content_moving_right_gives_negative_dx():
    earlier = _texture(1)
    later = _moved(earlier, 2.0, 0.0)
    flow = DISTeacher().backward_flow(earlier, later)[10:-10, 10:-10]
    assert np.median(flow[..., 0]) == pytest.approx(-2.0, abs=0.1)
    assert abs(np.median(flow[..., 1])) < 0.1
    # Swapping the frames reverses the motion, and so the sign.
    swapped = DISTeacher().backward_flow(later, earlier)[10:-10, 10:-10]
    assert np.median(swapped[..., 0]) == pytest.approx(2.0, abs=0.1)


def test_sequence_flows_order_and_errors():
    base = _texture(2, 64, 96)
    frames = np.stack([_moved(base, k * 1.0, 0.0) for k in range(4)])
    flows = get_teacher("dis").sequence_flows(frames)
    assert flows.shape == (3, 64, 96, 2)
    assert np.allclose(np.median(flows[:, 8:-8, 8:-8, 0], axis=(1, 2)), -1.0, atol=0.15)
    with pytest.raises(ValueError, match=r"\[N>=2, H, W, 3\]"):
        DISTeacher().sequence_flows(frames[:1])
    with pytest.raises(ValueError, match="uint8 RGB"):
        DISTeacher().backward_flow(frames[0].astype(np.float32), frames[1].astype(np.float32))
    with pytest.raises(ValueError, match="unknown flow teacher 'raft'"):
        get_teacher("raft")
    assert isinstance(get_teacher(DISTeacher("fast")), FlowTeacher)
