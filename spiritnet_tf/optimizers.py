"""Adam with one fused update op per variable: the default optimizer of SpiritNet's two
optimizers and of the depth net's pre-training."""

import keras
import tensorflow as tf


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (under a distribution
    strategy's update, the handle of the copy being updated)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="spiritnet_tf")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with the same arguments, configuration, variables and
    checkpoints, and the same maths up to float rounding::

        m += (g - m) (1 - beta_1);  v += (g^2 - v) (1 - beta_2)
        var -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

    Each variable is updated by one ``ResourceApplyAdam`` op (TensorFlow's fused Adam
    kernel) where Keras builds about 35 small ops per variable. A training graph holds
    one update per trainable variable, so for the depth net's 314 variables that was
    12,000 of the tiny test model's 64,000 graph nodes, all traced in Python and started
    by the runtime before the first step. ``amsgrad`` and sparse gradients
    (``tf.IndexedSlices``) take Keras's own update.

    With ``use_ema``, `finalize_variable_values` (which ``fit`` calls at its end with
    all of the model's trainable variables) replaces only the variables this optimizer
    updates with their averages: SpiritNet's depth net has an optimizer of its own.
    """

    def finalize_variable_values(self, var_list):
        if self.use_ema:
            self._overwrite_model_variables_with_average_value(self._trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
