"""spiritnet_tf.optimizers.Adam: Keras's Adam with one fused update op per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.optimizers import Adam


def _train(optimizer, steps=8):
    """``steps`` traced steps of ``optimizer`` on three variables; returns their values
    and the number of nodes in the traced step's graph."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=s).astype(np.float32)) for s in [(3, 3, 4, 5), (5,), (7,)]]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = sum(tf.reduce_sum(tf.sin(v * (k + 1.0)) * v) for k, v in enumerate(variables))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    for _ in range(steps):
        step()
    nodes = len(step.get_concrete_function().graph.as_graph_def().node)
    return [v.numpy() for v in variables], nodes


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_keras_adam_with_fewer_graph_nodes(amsgrad):
    def make(cls):
        rate = keras.optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)
        return cls(rate, global_clipnorm=1.0, amsgrad=amsgrad)

    ours, our_nodes = _train(make(Adam))
    theirs, their_nodes = _train(make(keras.optimizers.Adam))
    start, _ = _train(make(Adam), steps=0)
    for a, b, s in zip(ours, theirs, start):
        assert np.abs(b - s).mean() > 0.05  # trained
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if amsgrad:  # Keras's own update
        assert our_nodes == their_nodes
    else:  # one fused op per variable instead of Keras's ~35
        assert our_nodes < their_nodes - 3 * 15, (our_nodes, their_nodes)


def test_adam_keeps_keras_config_and_round_trips():
    optimizer = Adam(3e-4, beta_1=0.8, global_clipnorm=2.0, name="main")
    config = optimizer.get_config()
    assert config == keras.optimizers.Adam(3e-4, beta_1=0.8, global_clipnorm=2.0, name="main").get_config()
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is Adam and again.get_config() == config


def test_moving_average_replaces_only_the_optimizers_own_variables():
    """``fit`` finalizes with every trainable variable of the model; an optimizer that
    trains some of them (SpiritNet's main one: not the depth net) averages only those."""
    mine = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.zeros(2, np.float32))]
    other = keras.Variable(np.full(4, 5.0, np.float32))
    optimizer = Adam(0.1, use_ema=True, ema_momentum=0.5)
    optimizer.build(mine)
    start = [v.numpy() for v in mine]
    averages = [v.numpy() for v in mine]
    for step in range(4):
        optimizer.apply_gradients([(tf.ones_like(v), v) for v in mine])
        momentum = 0.0 if step == 0 else 0.5  # Keras starts the average at the first value
        averages = [momentum * a + (1 - momentum) * v.numpy() for a, v in zip(averages, mine)]
    trained = [v.numpy() for v in mine]
    optimizer.finalize_variable_values([other] + mine)  # the model's order, a stranger first
    for v, a, t, s in zip(mine, averages, trained, start):
        assert np.abs(t - s).min() > 0.3  # it trained
        np.testing.assert_allclose(v.numpy(), a, rtol=1e-6)
        assert np.abs(v.numpy() - t).min() > 0.05  # the average, not the last value
    np.testing.assert_array_equal(other.numpy(), 5.0)
