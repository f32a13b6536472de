"""SpiritNet model and SpiritNetCell: shapes, initial behaviour, controls, errors, saving."""

import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.config import SpiritNetConfig
from spiritnet_tf.layers.cell import STATE_CHANNELS, CellState, SpiritNetCell, SpiritNetRNN
from spiritnet_tf.model import SpiritNet

from conftest import TINY

RNG = np.random.default_rng(0)
IMAGE = RNG.random((1, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return SpiritNet.from_preset("small", resample_from="previous", **TINY)


@pytest.fixture(scope="module")
def model_input():
    return SpiritNet.from_preset("small", resample_from="input", **TINY)


def _shift_flow(dx, shape=(1, 32, 32)):
    flow = np.zeros(shape + (2,), np.float32)
    flow[..., 0] = dx
    return flow


def test_outputs_shapes_and_ranges(model):
    out = model({"image": IMAGE}, num_frames=3, seed=1)
    assert out["frames"].shape == (1, 3, 32, 32, 3)
    assert out["flows"].shape == (1, 3, 32, 32, 2)
    frames = out["frames"].numpy()
    assert frames.min() >= 0 and frames.max() <= 1
    # DAFR gave a non-zero motion that the recurrence carries on.
    assert np.abs(out["flows"].numpy()).max() > 0.1


def test_initial_model_is_constant_velocity_warp(model, model_input):
    """At initialisation (zero residuals, bilinear kernels) each step shifts by the flow.

    flow0 = (-2, 0) (content moving right by 2 px): frame t is the input shifted
    right by 2t px, exactly, away from the left border where DAFI leaves holes.
    """
    flow0 = _shift_flow(-2.0)
    for m in (model, model_input):
        out = m({"image": IMAGE, "flow0": flow0}, num_frames=2)
        frames, flows = out["frames"].numpy()[0], out["flows"].numpy()[0]
        np.testing.assert_allclose(flows[0, :, 2:], flow0[0, :, 2:], atol=1e-5)
        np.testing.assert_allclose(flows[1, :, 4:], flow0[0, :, 4:], atol=1e-5)
        np.testing.assert_allclose(frames[0, :, 2:], IMAGE[0, :, :-2], atol=1e-5)
        np.testing.assert_allclose(frames[1, :, 4:], IMAGE[0, :, :-4], atol=1e-5)


def test_resample_modes_differ_on_fractional_flow(model, model_input):
    """'previous' resamples twice (blur compounds), 'input' resamples the input once."""
    flow0 = _shift_flow(-0.5)
    prev = model({"image": IMAGE, "flow0": flow0}, num_frames=2)["frames"].numpy()[0, 1]
    once = model_input({"image": IMAGE, "flow0": flow0}, num_frames=2)["frames"].numpy()[0, 1]
    # The input shifted by exactly 1 px: what one resampling with the composed flow gives.
    np.testing.assert_allclose(once[:, 2:], IMAGE[0, :, 1:-1], atol=1e-5)
    assert np.abs(prev[:, 2:] - IMAGE[0, :, 1:-1]).mean() > 0.02
    assert prev[:, 2:].std() < once[:, 2:].std()  # blurred


def test_seed_controls_dafr(model):
    a = model({"image": IMAGE}, num_frames=1, seed=3)["flows"].numpy()
    b = model({"image": IMAGE}, num_frames=1, seed=3)["flows"].numpy()
    c = model({"image": IMAGE}, num_frames=1, seed=4)["flows"].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_direction_and_depth_inputs(model):
    depth = np.full((1, 32, 32, 1), 0.2, np.float32)
    depth[:, :, 16:] = 1.0  # right half near
    out = model({"image": IMAGE, "depth": depth}, num_frames=1, seed=0, direction=0.0)
    flow = out["flows"].numpy()[0, 0]
    # direction 0 = motion to the right = backward dx < 0; nearer half moves more.
    assert (flow[:, 4:, 0] < 0).all()
    assert np.abs(flow[:, 20:, 0]).mean() > 2 * np.abs(flow[:, 4:12, 0]).mean()


def test_mask_keeps_input_in_every_frame(model_input, model):
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[:, 8:20, 10:24] = 1
    for m in (model, model_input):
        out = m({"image": IMAGE, "mask": mask}, num_frames=3, seed=0, direction=0.0)
        frames, flows = out["frames"].numpy()[0], out["flows"].numpy()[0]
        keep = mask[0, ..., 0] > 0
        for t in range(3):
            np.testing.assert_array_equal(frames[t][keep], IMAGE[0][keep])
            np.testing.assert_array_equal(flows[t][keep], 0.0)
        assert np.abs(frames[2][~keep] - IMAGE[0][~keep]).max() > 1e-3


def test_control_vector_offsets_flow(model):
    flow0 = _shift_flow(-1.0)
    base = model({"image": IMAGE, "flow0": flow0}, num_frames=2)["flows"].numpy()
    zeros = model({"image": IMAGE, "flow0": flow0, "control": np.zeros((1, 2), np.float32)}, num_frames=2)
    np.testing.assert_array_equal(base, zeros["flows"].numpy())
    control = model.cell.control
    old = control.kernel.numpy()
    try:
        control.kernel.assign(np.eye(2, dtype=np.float32))
        per_step = np.array([[[0.0, 0.0], [0.5, -0.25]]], np.float32)  # [B, T, C]
        out = model({"image": IMAGE, "flow0": flow0, "control": per_step}, num_frames=2)
        flows = out["flows"].numpy()
        np.testing.assert_allclose(flows[0, 0], base[0, 0], atol=1e-6)
        interior = flows[0, 1, :, 6:] - base[0, 1, :, 6:]
        np.testing.assert_allclose(interior.reshape(-1, 2).mean(0), [0.5, -0.25], atol=1e-4)
    finally:
        control.kernel.assign(old)


def test_odd_size_is_padded_and_cropped(model):
    """Padding goes below and to the right, and the crop takes the top-left H x W: at
    initialisation (constant-velocity warp) with flow0 = (-2, -1) every frame is the
    37x61 input moved right by 2t and down by t px, value for value. A crop offset by
    the padding (or padding on the other side) would move the frames by up to 27 px."""
    image = RNG.random((2, 37, 61, 3)).astype(np.float32)
    out = model({"image": image}, num_frames=2, seed=0)
    assert out["frames"].shape == (2, 2, 37, 61, 3)
    assert out["flows"].shape == (2, 2, 37, 61, 2)
    flow0 = np.zeros((2, 37, 61, 2), np.float32)
    flow0[..., 0], flow0[..., 1] = -2.0, -1.0
    out = model({"image": tf.constant(image), "flow0": flow0}, num_frames=tf.constant(2))
    frames, flows = out["frames"].numpy(), out["flows"].numpy()
    assert frames.shape == (2, 2, 37, 61, 3)
    for t in (1, 2):
        np.testing.assert_allclose(frames[:, t - 1, t:, 2 * t:], image[:, :-t, :-2 * t],
                                   atol=1e-5)
        np.testing.assert_allclose(flows[:, t - 1, t:, 2 * t:], flow0[:, t:, 2 * t:], atol=1e-5)


def test_float_image_outside_the_unit_range_is_refused_like_animate(model, tmp_path):
    """A 0..255 float image is refused by `SpiritNet` with `animate`'s message (one
    check, `check_unit_range`); values within 1/255 of [0, 1] pass; inside tf.function
    (the exports) nothing is checked, so no assert enters the graph."""
    from spiritnet_tf.io.images import ImageInputError, load_image

    image255 = (IMAGE * 255).astype(np.float32)
    with pytest.raises(ImageInputError) as from_model:
        model({"image": image255}, num_frames=1)
    with pytest.raises(ImageInputError) as from_loader:  # what animate() loads with
        load_image(image255[0], name="SpiritNet: 'image'")
    assert str(from_loader.value) in str(from_model.value)  # Keras adds the call's arguments
    assert "float values must lie in [0, 1], got [" in str(from_model.value)
    with pytest.raises(ImageInputError, match=r"must lie in \[0, 1\]"):
        model({"image": tf.constant(IMAGE - 0.5)}, num_frames=1)
    model({"image": np.clip(IMAGE * 1.003, 0, 1.003), "flow0": _shift_flow(-1.0)},
          num_frames=1)  # within rounding: accepted

    traced = tf.function(lambda x: model({"image": x, "flow0": _shift_flow(-1.0)},
                                         num_frames=1)["frames"])
    assert traced(image255).shape == (1, 1, 32, 32, 3)  # unchecked inside graphs


def test_uint8_image_is_scaled(model):
    image8 = (IMAGE * 255).round().astype(np.uint8)
    flow0 = _shift_flow(-1.0)
    a = model({"image": image8, "flow0": flow0}, num_frames=1)["frames"].numpy()
    b = model({"image": image8.astype(np.float32) / 255, "flow0": flow0}, num_frames=1)["frames"].numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "inputs, kwargs, error, match",
    [
        ({"image": IMAGE[0]}, {}, ValueError, r"\[B,H,W,3\]"),
        ({"image": np.zeros((1, 32, 32, 4), np.float32)}, {}, ValueError, r"\[B,H,W,3\]"),
        ({"image": np.zeros((1, 16, 40, 3), np.float32)}, {}, ValueError, "height 16 is below"),
        ({"image": IMAGE, "flow0": np.zeros((1, 32, 32, 3), np.float32)}, {}, ValueError, "flow0"),
        ({"image": IMAGE, "mask": np.zeros((1, 30, 32, 1), np.float32)}, {}, ValueError, "mask"),
        ({"image": IMAGE, "colour": IMAGE}, {}, ValueError, "unknown input"),
        ({"image": IMAGE, "flow0": _shift_flow(1.0), "flow_before": _shift_flow(1.0)}, {},
         ValueError, "flow_before.*flow_history"),
        ({"image": IMAGE}, {"num_frames": 0}, ValueError, "num_frames"),
        ({"image": np.where(IMAGE > 0.5, np.nan, IMAGE)}, {}, tf.errors.InvalidArgumentError, "image.*NaN"),
        ({"image": IMAGE, "flow0": np.full((1, 32, 32, 2), np.inf, np.float32)}, {},
         tf.errors.InvalidArgumentError, "flow0.*NaN or inf"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, inputs, kwargs, error, match):
    with pytest.raises(error, match=match):
        model(inputs, **{"num_frames": 1, **kwargs})


def test_keras_save_load_identical(model_input, tmp_path):
    image = RNG.random((1, 40, 33, 3)).astype(np.float32)
    a = model_input({"image": image}, num_frames=2, seed=7)  # built before it is saved,
    # whichever tests ran before in this process
    path = str(tmp_path / "spiritnet.keras")
    model_input.save(path)
    loaded = tf.keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, SpiritNet)
    assert loaded.config == model_input.config
    b = loaded({"image": image}, num_frames=2, seed=7)
    for key in ("frames", "flows"):
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_cell_config_round_trip_and_rnn_shapes():
    config = SpiritNetConfig(**TINY, resample_from="input")
    cell = SpiritNetCell(config)
    clone = SpiritNetCell.from_config(cell.get_config())
    assert clone.config == config
    # "input" mode carries the input's context features, computed once, as a seventh state.
    assert [s[-1] for s in cell.state_size] == [3, 2, 3, 2, 1, 1, cell.context.output_channels]
    assert len(SpiritNetCell(SpiritNetConfig(**TINY, resample_from="previous")).state_size) == 6
    rnn = SpiritNetRNN(cell, return_sequences=True)
    assert rnn.compute_output_shape((2, 5, 4)) == (2, 5, None, None, 8)  # frame, flow, residual
    with pytest.raises(ValueError, match="resample_from"):
        SpiritNetConfig(resample_from="next")
    with pytest.raises(ValueError, match="unknown SpiritNet preset"):
        SpiritNet.from_preset("huge")


def test_compiled_model_round_trips_its_training_setup(tmp_path):
    import keras

    model = SpiritNet.from_preset("small", **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss_config=dict(style_weight=0.0, tv_weight=0.5))
    path = str(tmp_path / "compiled.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.compiled
    assert loaded.loss_config == model.loss_config
    assert loaded.optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    assert loaded.depth_optimizer.learning_rate.numpy() == pytest.approx(1e-4)


# ------------------------------------------------------------------ depth, DAFR, state


def _old_pipeline(model, image, seed, direction=None, magnitude=1.0, mask=None):
    """pad -> depth -> DAFR as animation.py, training/run.py and export_mobile.py wrote it
    before `SpiritNet.estimate_depth` / `initial_flow` existed (the reference)."""
    h, w = image.shape[1], image.shape[2]
    pads = [[0, 0], [0, -h % 32], [0, -w % 32], [0, 0]]
    z = model.cell.estimate_depth(tf.pad(image, pads, mode="REFLECT"), training=False)
    if mask is not None:  # edge-replicated and made binary, as SpiritNet.call pads it
        mask = tf.pad(tf.constant(mask), pads, mode="SYMMETRIC")
        mask = tf.cast(mask > 0.5, tf.float32)
    flow = model.dafr(z, tf.constant(seed, tf.int64), direction=direction, magnitude=magnitude,
                      mask=mask)
    return z[:, :h, :w].numpy(), flow[:, :h, :w].numpy()


def test_estimate_depth_and_initial_flow_equal_the_old_pad_depth_dafr_code(model):
    """Odd size (padding on both axes), batch 2: the public methods give what the three
    copies outside the model computed, value for value."""
    image = RNG.random((2, 37, 61, 3)).astype(np.float32)
    z_old, flow_old = _old_pipeline(model, image, seed=5)
    z = model.estimate_depth(image).numpy()
    assert z.shape == (2, 37, 61, 1) and z.dtype == np.float32
    assert z.min() >= 1e-3 and z.max() <= 1.0
    np.testing.assert_array_equal(z, z_old)
    flow = model.initial_flow(image, 5).numpy()
    assert flow.shape == (2, 37, 61, 2) and np.abs(flow).max() > 0.1
    np.testing.assert_array_equal(flow, flow_old)
    # uint8 is scaled like call's image; another seed draws another flow.
    image8 = (image * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(model.estimate_depth(image8).numpy(),
                                  model.estimate_depth(image8.astype(np.float32) / 255).numpy())
    assert not np.allclose(model.initial_flow(image, 6).numpy(), flow)


def test_initial_flow_controls_and_mask(model):
    """direction, magnitude and the static mask reach DAFR (mask padded like call's)."""
    image = RNG.random((1, 40, 50, 3)).astype(np.float32)
    mask = np.zeros((1, 40, 50, 1), np.float32)
    mask[:, 25:, :30] = 0.8  # > 0.5: static; touches the bottom border (padded rows)
    _, flow_old = _old_pipeline(model, image, 3, direction=90.0, magnitude=2.0, mask=mask)
    flow = model.initial_flow(image, 3, direction=90.0, magnitude=2.0, mask=mask).numpy()
    np.testing.assert_array_equal(flow, flow_old)
    assert np.all(flow[:, 25:, :30] == 0) and np.abs(flow[:, :25]).max() > 0.1
    # Motion 90 degrees = content moving down: backward flow dy < 0, and every pixel's
    # motion within DAFR's max_turn_deg (15) of that direction.
    moving = flow[0, :25]
    assert moving[..., 1].max() < 0
    assert np.all(np.abs(moving[..., 0]) <= np.tan(np.radians(15.01)) * -moving[..., 1])
    half = model.initial_flow(image, 3, direction=90.0, magnitude=1.0, mask=mask).numpy()
    np.testing.assert_allclose(flow, 2.0 * half, rtol=1e-5, atol=1e-6)


def test_initial_flow_is_the_flow_call_draws(model_input):
    """H, W multiples of 32 (no padding to differ): call given initial_flow's flow0 and
    estimate_depth's z as its inputs = call drawing both itself."""
    image = RNG.random((1, 64, 32, 3)).astype(np.float32)
    drawn = model_input({"image": image}, num_frames=2, seed=4)
    given = model_input({"image": image, "flow0": model_input.initial_flow(image, 4),
                         "depth": model_input.estimate_depth(image)}, num_frames=2)
    for key in ("frames", "flows"):
        np.testing.assert_array_equal(given[key].numpy(), drawn[key].numpy())


def test_estimate_depth_and_initial_flow_refuse_bad_images(model):
    with pytest.raises(ValueError, match="height 16 is below"):
        model.estimate_depth(np.zeros((1, 16, 40, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[B,H,W,3\]"):
        model.initial_flow(IMAGE[0], 0)
    with pytest.raises(ValueError, match="'mask' is 30x32 but the image is 32x32"):
        model.initial_flow(IMAGE, 0, mask=np.zeros((1, 30, 32, 1), np.float32))


def test_cell_state_names_the_flat_keras_state():
    """`CellState` <-> the flat list Keras' RNN carries: one mapping, used by both sides."""
    tensors = [tf.fill([1, 32, 32, c], float(i)) for i, c in enumerate(STATE_CHANNELS[:-1])]
    state = CellState.from_list(tensors)
    assert state.source_context is None and state.mask.shape[-1] == 1
    assert float(state.depth_override[0, 0, 0, 0]) == 5.0
    assert state.to_list() == tensors
    context = tf.zeros([1, 32, 32, 8])
    assert CellState.from_list(tensors + [context]).source_context is context
    with pytest.raises(ValueError, match="6 or 7 state tensors, got 5"):
        CellState.from_list(tensors[:5])


def test_cell_hands_on_the_mask_and_drops_the_depth_override(model):
    """A step keeps source, mask and source context, consumes the depth override (zeros
    next), and its output has 8 channels (frame, flow, residual)."""
    cell = model.cell
    image = tf.constant(IMAGE)
    mask = tf.concat([tf.ones([1, 32, 16, 1]), tf.zeros([1, 32, 16, 1])], 2)
    state = CellState(image=image, flow=tf.constant(_shift_flow(-1.0)), source=image,
                      source_flow=tf.zeros([1, 32, 32, 2]), mask=mask,
                      depth_override=tf.fill([1, 32, 32, 1], 0.5))
    output, new = cell(tf.zeros([1, model.config.control_dim]), state.to_list())
    new = CellState.from_list(new)
    assert output.shape == (1, 32, 32, 8)
    assert new.source is image and new.mask is mask
    assert float(tf.reduce_max(new.depth_override)) == 0.0
    np.testing.assert_array_equal(new.image.numpy()[:, :, :16], IMAGE[:, :, :16])  # static half
    np.testing.assert_array_equal(new.flow.numpy()[:, :, :16], 0.0)
    np.testing.assert_array_equal(output.numpy()[..., :3], new.image.numpy())
    # The override is what the step uses: the halves move towards each other, and where
    # their projections collide DAFI weighs the flows by z, so the nearer half wins.
    flow = np.zeros((1, 32, 32, 2), np.float32)
    flow[:, :, :16, 0], flow[:, :, 16:, 0] = -3.0, 3.0  # content moving right | left
    near_right = np.full((1, 32, 32, 1), 0.05, np.float32)
    near_right[:, :, 16:] = 1.0
    flows = []
    for z in (near_right, near_right[:, :, ::-1]):
        step = state._replace(flow=tf.constant(flow), mask=tf.zeros([1, 32, 32, 1]),
                              depth_override=tf.constant(z))
        flows.append(cell(tf.zeros([1, model.config.control_dim]), step.to_list())[0][..., 3:5])
    assert np.abs(flows[0].numpy() - flows[1].numpy()).max() > 0.5


def test_eager_calls_skip_the_depth_pass_whose_estimate_is_discarded(model, monkeypatch):
    """With z0 known (drawn by DAFR or given), the first step's depth estimate would be
    discarded: eager calls run the depth net once for DAFR and then once per later step,
    and give the frames the graph (which always runs it) gives."""
    image = RNG.random((1, 32, 64, 3)).astype(np.float32)
    expected = tf.function(lambda x: model({"image": x}, num_frames=3, seed=4))(image)
    calls = []
    real = model.cell.log_depth
    monkeypatch.setattr(model.cell, "log_depth",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    out = model({"image": image}, num_frames=3, seed=4)
    assert len(calls) == 1 + 2  # DAFR's estimate, then steps 2 and 3
    np.testing.assert_allclose(out["frames"], expected["frames"], atol=1e-5)
    np.testing.assert_allclose(out["flows"], expected["flows"], atol=1e-4)
    calls.clear()
    model({"image": image, "depth": np.full((1, 32, 64, 1), 0.5, np.float32)}, num_frames=3)
    assert len(calls) == 2  # a given depth: no estimate for DAFR or the first step


def test_infer_gives_call_s_results_eager_and_traced(model_input):
    """`SpiritNet.infer` (what animate runs: the depth net and the rest of a step traced
    once per shape) returns call's frames, flows and residuals, with a depth map and a
    mask as animate passes them, and without them (DAFR's depth from the depth net)."""
    rng = np.random.default_rng(7)
    image = rng.random((1, 40, 72, 3)).astype(np.float32)
    z = model_input.estimate_depth(image).numpy()
    mask = np.zeros((1, 40, 72, 1), np.float32)
    mask[:, :, :20] = 1.0
    for inputs in ({"image": image, "depth": z, "mask": mask}, {"image": image}):
        want = model_input(inputs, num_frames=2, seed=3, return_residuals=True)
        runs = [("eager", False), ("auto, first call: eager", "auto"),
                ("auto, second call: traced", "auto"), ("traced", True)]
        for what, trace in runs:
            calls = []  # the progress hook: after each generated frame
            got = model_input.infer(inputs, num_frames=2, seed=3, return_residuals=True, trace=trace,
                                    progress=lambda t, total: calls.append((t, total)))
            assert sorted(got) == ["flows", "frames", "residuals"], what
            assert calls == [(1, 2), (2, 2)], what
            for key in got:
                np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-5, err_msg=what)
    traced = model_input._traced_functions
    assert traced["step"].experimental_get_tracing_count() == 1  # both input sets: one shape
    np.testing.assert_allclose(model_input.estimate_depth(image, trace=True).numpy(), z, atol=1e-6)


def test_infer_traces_a_first_call_of_many_frames(model_input):
    """trace="auto": the first call of a shape runs eagerly when it makes fewer than
    `TRACE_FIRST_FRAMES` frames, and traced at once when it makes that many (the second
    call of a shape is traced either way: the test above)."""
    from spiritnet_tf.model import TRACE_FIRST_FRAMES

    rng = np.random.default_rng(11)
    model_input.infer({"image": rng.random((1, 32, 32, 3), np.float32)}, num_frames=1)
    traced = model_input._traced_functions
    step, shapes = traced["step"], len(traced["seen"])
    before = step.experimental_get_tracing_count()
    model_input.infer({"image": rng.random((1, 128, 32, 3), np.float32)},
                      num_frames=TRACE_FIRST_FRAMES - 1)
    assert len(traced["seen"]) == shapes + 1  # a shape no test ran before: its first call
    assert step.experimental_get_tracing_count() == before
    model_input.infer({"image": rng.random((1, 32, 128, 3), np.float32)},
                      num_frames=TRACE_FIRST_FRAMES)
    assert len(traced["seen"]) == shapes + 2
    assert step.experimental_get_tracing_count() == before + 1


def test_infer_refuses_bad_arguments(model_input):
    image = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="trace must be True, False or 'auto'"):
        model_input.infer({"image": image}, num_frames=1, trace="yes")
    with pytest.raises(ValueError, match="num_frames must be an int >= 1"):
        model_input.infer({"image": image}, num_frames=0)
    with pytest.raises(ValueError, match="num_frames must be an int >= 1"):
        model_input.infer({"image": image}, num_frames=tf.constant(2))


@pytest.mark.parametrize("resample_from", ["previous", "input"])
def test_depth_once_per_sequence_carries_z_with_the_flow(resample_from, monkeypatch):
    """``depth_every_step=False``: the depth net runs once per call, eager or traced, with
    or without a given flow0, and each step hands on its z warped bilinearly by its flow."""
    from spiritnet_tf.evaluation import bilinear_warp

    model = SpiritNet.from_preset("small", resample_from=resample_from,
                                  depth_every_step=False, **TINY)
    assert model.get_config()["config"]["depth_every_step"] is False
    model.build()
    calls = []
    real = model.cell.log_depth
    monkeypatch.setattr(model.cell, "log_depth", lambda *a, **k: calls.append(1) or real(*a, **k))
    image = RNG.random((1, 32, 64, 3)).astype(np.float32)
    want = model({"image": image}, num_frames=3, seed=4)
    assert len(calls) == 1
    calls.clear()
    got = model.infer({"image": image}, num_frames=3, seed=4, trace=True)  # what animate runs
    assert len(calls) == 1
    np.testing.assert_allclose(got["frames"].numpy(), want["frames"].numpy(), atol=1e-5)
    calls.clear()
    tf.function(lambda x: model({"image": x, "flow0": _shift_flow(1.5, (1, 32, 64))},
                                num_frames=4))(image)
    assert len(calls) == 1  # traced: one depth net in the graph of 4 steps

    # One step by hand: the next state's z is this step's z moved by the step's flow.
    z = np.tile(np.linspace(0.1, 1.0, 64, dtype=np.float32)[None, None, :, None], (1, 32, 1, 1))
    state = CellState(image=image, flow=_shift_flow(2.0, (1, 32, 64)), source=image,
                      source_flow=np.zeros((1, 32, 64, 2), np.float32),
                      mask=np.zeros((1, 32, 64, 1), np.float32), depth_override=z,
                      source_context=(model.cell.context(image)
                                      if resample_from == "input" else None))
    output, new_states = model.cell(tf.zeros((1, 2)), state.to_list())
    carried = CellState.from_list(new_states).depth_override.numpy()
    flow = output[..., 3:5].numpy()
    assert np.abs(flow).max() > 0.5
    expected = np.maximum(bilinear_warp(z, flow).numpy(), 1e-3)
    inside = (slice(None), slice(3, -3), slice(3, -3))  # borders: edge handling may differ
    np.testing.assert_allclose(carried[inside], expected[inside], atol=1e-4)
    assert np.abs(carried - z).max() > 0.01  # it moved


def test_a_step_count_known_only_when_run_traces_one_cell_per_loop(model_input, monkeypatch):
    """A number of steps given as a tensor (the SavedModel's num_frames) runs a while loop
    whose body is the only copy of the cell: Keras' own loop traced one more step before
    the loop and, with the warp's (stateful) shape asserts in a graph of unknown sizes,
    TensorFlow computed it (T + 1 steps for T frames). The frames equal the unrolled loop's."""
    image = RNG.random((1, 32, 64, 3)).astype(np.float32)
    flow0 = RNG.normal(0, 1.0, (1, 32, 64, 2)).astype(np.float32)
    expected = model_input({"image": image, "flow0": flow0}, num_frames=3)
    calls = []
    real = model_input.cell.log_depth
    monkeypatch.setattr(model_input.cell, "log_depth",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    dynamic = tf.function(
        lambda x, f, n: model_input({"image": x, "flow0": f}, num_frames=n),
        input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None, 2]),
                         tf.TensorSpec([], tf.int32)])
    out = dynamic(image, flow0, tf.constant(3))
    assert len(calls) == 1  # traced once: the loop's body (flow0 given: no DAFR estimate)
    for key in ("frames", "flows"):
        np.testing.assert_allclose(out[key], expected[key], atol=1e-5)
    assert dynamic(image, flow0, tf.constant(1))["frames"].shape == (1, 1, 32, 64, 3)


@pytest.mark.parametrize("overrides", [{}, {"resample_from": "previous", "depth_every_step": False}])
def test_build_creates_every_weight_without_a_forward_pass(overrides, monkeypatch):
    """``build`` makes the weights from channel counts: no layer runs, a forward pass
    afterwards adds no weight, and the variables keep a forward pass's paths (the depth
    net's, and with resampling from the input the context extractor's, at the model's
    level; the rest inside the cell)."""
    model = SpiritNet.from_preset("small", **TINY, **overrides)
    for layer in (model.depth_net, model.cell.context, model.cell.kernels):
        monkeypatch.setattr(layer, "call", lambda *a, **k: pytest.fail("a layer ran in build"))
    model.build()
    monkeypatch.undo()
    built = [(w.path, tuple(w.shape)) for w in model.weights]
    model({"image": RNG.random((1, 32, 64, 3)).astype(np.float32)}, num_frames=2, seed=1)
    assert [(w.path, tuple(w.shape)) for w in model.weights] == built
    top, cell = f"{model.name}/", f"{model.name}/{model.rnn.name}/{model.cell.name}/"
    assert all(w.path.startswith(f"{top}{model.depth_net.name}/") for w in model.depth_net.weights)
    context = (top if not overrides else cell) + f"{model.cell.context.name}/"
    assert all(w.path.startswith(context) for w in model.cell.context.weights)
    assert all(w.path.startswith(cell) for w in model.cell.synthesis.weights)
    # A depth net built (e.g. given its weights) before the model is kept as it is.
    other = SpiritNet.from_preset("small", **TINY, **overrides)
    other.depth_net.build((None, None, None, 3))
    other.depth_net.set_weights(model.depth_net.get_weights())
    other.build()
    assert [tuple(w.shape) for w in other.weights] == [s for _, s in built]
    np.testing.assert_array_equal(other.depth_net.weights[0].numpy(), model.depth_net.weights[0].numpy())


def test_flow_change_is_zero_for_a_steady_pan_and_large_for_a_shake():
    from spiritnet_tf.layers.cell import flow_change

    pan = _shift_flow(-2.0, (1, 32, 48))
    np.testing.assert_allclose(flow_change(pan, pan)[:, :, 4:-4], 0.0, atol=1e-5)
    # The camera reverses: content that moved right now moves left.
    np.testing.assert_allclose(flow_change(-pan, pan)[:, :, 4:-4], 2 * pan[:, :, 4:-4], atol=1e-5)
    # The flow before is read where the content was: a before-flow that is 1 px right of
    # x = 20 and 0 elsewhere matters for the pixel whose flow points there.
    before = np.zeros((1, 32, 48, 2), np.float32)
    before[:, :, 18, 0] = 1.0
    change = flow_change(before, pan).numpy()
    assert change[0, 5, 20, 0] == pytest.approx(-3.0) and change[0, 5, 18, 0] == pytest.approx(-2.0)


def test_flow_history_model_reads_the_flow_before_flow0():
    """The fill-hole network sees the change of the flow: a steady flow_before gives what no
    flow_before gives (zero change), a reversed one changes the flows once the network's
    output layer is not zero; the change moves on with the recurrence (4-channel flow state)."""
    model = SpiritNet.from_preset("small", resample_from="previous", flow_history=True, **TINY)
    image = RNG.random((1, 32, 48, 3)).astype(np.float32)
    flow0 = _shift_flow(-1.5, (1, 32, 48))
    model({"image": image, "flow0": flow0}, num_frames=1)
    head = model.cell.fill_hole.head
    head.kernel.assign(RNG.normal(0, 0.05, head.kernel.shape).astype(np.float32))
    assert model.cell.state_size[1] == (None, None, 4)
    # flow, hole, image, context, z, and the change of the flow
    assert model.cell.fill_hole.stem.kernel.shape[2] == 2 + 1 + 3 + model.cell.context.output_channels + 1 + 2
    plain = model({"image": image, "flow0": flow0}, num_frames=3)["flows"].numpy()
    steady = model({"image": image, "flow0": flow0, "flow_before": flow0}, num_frames=3)["flows"].numpy()
    reversed_ = model({"image": image, "flow0": flow0, "flow_before": -flow0}, num_frames=3)
    np.testing.assert_allclose(steady[:, :, :, 8:-8], plain[:, :, :, 8:-8], atol=1e-4)
    assert np.abs(reversed_["flows"].numpy()[:, 0] - plain[:, 0]).max() > 1e-3
    traced = model.infer({"image": image, "flow0": flow0, "flow_before": -flow0}, num_frames=3,
                         trace=True)
    np.testing.assert_allclose(traced["flows"], reversed_["flows"], atol=1e-4)
    with pytest.raises(ValueError, match="flow_before.*needs 'flow0'"):
        model({"image": image, "flow_before": flow0}, num_frames=1)


def test_synthesis_history_shows_the_flow_change_to_the_synthesis():
    """``synthesis_history``: the frame synthesis sees the flow's change as two more
    channels; a steady flow_before renders like no flow_before, a reversed one renders
    differently once the synthesis head is not zero (the flows then do not change: the
    fill-hole head stays zero); without ``flow_history`` the option is refused."""
    model = SpiritNet.from_preset("small", resample_from="input", flow_history=True,
                                  synthesis_history=True, **TINY)
    image = RNG.random((1, 32, 48, 3)).astype(np.float32)
    flow0 = _shift_flow(-1.5, (1, 32, 48))
    model({"image": image, "flow0": flow0}, num_frames=1)
    context = model.cell.context.output_channels
    assert model.cell.synthesis.stem.kernel.shape[2] == 3 + context + 2 + 2 + 1
    head = model.cell.synthesis.head
    head.kernel.assign(RNG.normal(0, 0.05, head.kernel.shape).astype(np.float32))
    plain = model({"image": image, "flow0": flow0}, num_frames=2)
    steady = model({"image": image, "flow0": flow0, "flow_before": flow0}, num_frames=2)
    reversed_ = model({"image": image, "flow0": flow0, "flow_before": -flow0}, num_frames=2)
    np.testing.assert_allclose(steady["frames"][:, :, 8:-8, 8:-8], plain["frames"][:, :, 8:-8, 8:-8],
                               atol=1e-4)
    np.testing.assert_allclose(reversed_["flows"], plain["flows"], atol=1e-5)
    assert np.abs(reversed_["frames"].numpy()[:, 0] - plain["frames"].numpy()[:, 0]).max() > 1e-3
    with pytest.raises(ValueError, match="synthesis_history needs flow_history"):
        SpiritNetConfig(synthesis_history=True)


def test_warp_outside_clamp_repeats_the_edge_and_changes_nothing_inside():
    """``warp_outside="clamp"``: a pan that uncovers the right edge shows the edge column
    there (the copy rule shows the pixel itself); elsewhere both rules give the same frames,
    and the flows are not changed."""
    from spiritnet_tf.ops.flow import clamp_to_frame

    flow = np.zeros((1, 4, 5, 2), np.float32)
    flow[0, 1, 2] = (4.0, -3.0)  # q = (6, -2): clamped to (4, 0)
    flow[0, 2, 1] = (0.5, 0.5)  # inside: unchanged
    clamped = clamp_to_frame(flow).numpy()
    np.testing.assert_allclose(clamped[0, 1, 2], (2.0, -1.0))
    np.testing.assert_allclose(clamped[0, 2, 1], (0.5, 0.5))
    copy = SpiritNet.from_preset("small", resample_from="previous", **TINY)
    clamp = copy.with_config(warp_outside="clamp")
    image = RNG.random((1, 32, 64, 3)).astype(np.float32)  # a multiple of 32: no padding
    inputs = {"image": image, "flow0": _shift_flow(3.0, (1, 32, 64))}  # content moves left
    a, b = copy(inputs, num_frames=1), clamp(inputs, num_frames=1)
    np.testing.assert_array_equal(a["flows"].numpy(), b["flows"].numpy())
    np.testing.assert_allclose(a["frames"][:, :, :, :60], b["frames"][:, :, :, :60], atol=1e-5)
    # The untrained model is the bilinear warp: the last 3 columns sample outside.
    np.testing.assert_allclose(b["frames"][0, 0, :, -3:], np.repeat(image[0, :, -1:], 3, 1), atol=1e-5)
    np.testing.assert_allclose(a["frames"][0, 0, :, -3:], image[0, :, -3:], atol=1e-5)
    with pytest.raises(ValueError, match="warp_outside"):
        SpiritNetConfig(warp_outside="mirror")
