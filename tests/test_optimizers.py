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
