"""The semantic memories: EMA copies of the working model, their updates (SPEC step 6)
and the per-sample teacher pick between them (SPEC steps 2 and 7)."""

from __future__ import annotations

import keras
import tensorflow as tf

from clser_tf.draws import uniform


def ema_copy(backbone: keras.Model) -> keras.Model:
    """A copy of ``backbone`` with its initial weights, updated only by assignment."""
    copy = keras.models.clone_model(backbone)
    copy.set_weights(backbone.get_weights())
    for variable in copy.weights:
        variable.trainable = False  # the optimizer never sees EMA weights
    return copy


def logits_dtype(model: keras.Model) -> tf.DType:
    """The dtype the step takes logits and losses in: float32 (from a 16-bit or 32-bit
    model), or float64 for a model that computes in float64."""
    return tf.float64 if model.compute_dtype == "float64" else tf.float32


def ema_alpha(step: tf.Tensor, alpha_max: float, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """SPEC step 6 warm-up: ``min(1 - 1 / (step + 1), alpha_max)`` for the incremented step."""
    return tf.minimum(1.0 - 1.0 / (tf.cast(step, dtype) + 1.0), alpha_max)


def maybe_ema_update(ema_model: keras.Model, working_model: keras.Model, alpha_max: float,
                     freq: float, seed: tf.Tensor, step: tf.Tensor) -> None:
    """θ_ema ← α·θ_ema + (1 − α)·θ_w over trainable weights, with probability ``freq``
    (one stateless Bernoulli draw from ``seed``)."""
    alpha = ema_alpha(step, alpha_max, logits_dtype(working_model))

    def update():
        for ema_var, var in zip(ema_model.weights, working_model.weights):
            if var.trainable:
                ema_var.assign(alpha * ema_var.value + (1.0 - alpha) * var.value)
        return tf.constant(True)

    tf.cond(uniform([], seed) < freq, update, lambda: tf.constant(False))


def forward_rows(model: keras.Model, working_model: keras.Model, rows: tf.Tensor,
                 fallback: tf.Tensor, has_rows: tf.Tensor | bool) -> tf.Tensor:
    """``model(rows, training=True)`` in :func:`logits_dtype`, for a batch that may be empty.

    An empty batch has NaN batch statistics, and a ``tf.cond`` cannot hold the collective
    of a synchronised BatchNorm. So an empty ``rows`` runs on ``fallback`` instead and the
    batch state that pass changed (moving statistics, the weights that are not trainable in
    ``working_model``) is put back. ``has_rows`` True (a Python bool) runs ``rows`` alone.
    """
    if has_rows is True:
        return tf.cast(model(rows, training=True), logits_dtype(model))
    state = [ema_var for ema_var, var in zip(model.weights, working_model.weights)
             if not var.trainable]
    saved = [tf.identity(v.value) for v in state]
    inputs = tf.concat([rows, fallback[:tf.where(has_rows, 0, tf.shape(fallback)[0])]], 0)
    logits = tf.cast(model(inputs, training=True),
                     logits_dtype(model))[:tf.shape(rows)[0]]
    for variable, value in zip(state, saved):
        variable.assign(tf.where(has_rows, variable.value, value))
    return logits


def teacher_logits(stable_model: keras.Model | None, plastic_model: keras.Model | None,
                   working_model: keras.Model, x_m: tf.Tensor, y_m: tf.Tensor,
                   fallback: tf.Tensor, has_replay: tf.Tensor | bool
                   ) -> tuple[tf.Tensor | None, tf.Tensor]:
    """SPEC step 2 (and 7: teachers run in training mode, no gradient): per replay sample,
    the logits of the EMA model that gives its label the higher probability (ties go to
    plastic), and whether that was the stable model. With one semantic memory it is the
    teacher; with none there is no teacher (None)."""
    z_s, z_p = (None if model is None else tf.stop_gradient(
        forward_rows(model, working_model, x_m, fallback, has_replay))
        for model in (stable_model, plastic_model))
    if z_s is None or z_p is None:
        only_stable = tf.fill(tf.shape(y_m), z_s is not None)
        return (z_s if z_p is None else z_p), only_stable
    label_prob = lambda z: tf.gather(tf.nn.softmax(z), y_m, axis=1, batch_dims=1)
    stable_chosen = label_prob(z_s) > label_prob(z_p)
    return tf.where(stable_chosen[:, None], z_s, z_p), stable_chosen
