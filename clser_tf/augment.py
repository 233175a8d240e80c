"""In-graph, stateless training augmentation (random crop with padding, horizontal flip).

Every random draw is keyed on an explicit ``seed`` tensor of shape ``[2]``, so the same
seed gives the same augmentation on every replica and after a save/load round trip.
The functions work on any dtype (uint8 images stay uint8).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from clser_tf.draws import uniform


def random_crop_flip(images: tf.Tensor, seed: tf.Tensor, padding: int = 4,
                     flip: bool = True) -> tf.Tensor:
    """Randomly crops each image of a ``[B, H, W, C]`` (or ``[B, H, W]``) batch after zero
    padding, then flips.

    Matches torchvision's ``RandomCrop(H, padding)`` followed by ``RandomHorizontalFlip()``:
    each sample gets its own offset in ``[0, 2 * padding]`` on each axis and a flip with
    probability 0.5.
    """
    if images.shape.rank == 3:  # single-channel images stored as [B, H, W]
        return random_crop_flip(images[..., None], seed, padding, flip)[..., 0]
    height, width = images.shape[1], images.shape[2]
    offsets, flip_draws = crop_flip_draws(tf.shape(images)[0], seed, padding)
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    if flip:
        out = tf.where(flip_draws[:, None, None, None] < 0.5, tf.reverse(out, axis=[2]), out)
    return out


def crop_flip_draws(batch: int | tf.Tensor, seed: tf.Tensor,
                    padding: int = 4) -> tuple[tf.Tensor, tf.Tensor]:
    """The random draws of :func:`random_crop_flip` for ``batch`` images: each image's
    (row, column) crop offset in ``[0, 2 * padding]`` (``[batch, 2]`` int32) and its flip
    draw in [0, 1) (``[batch]`` float32; flipped when < 0.5)."""
    seed = tf.cast(seed, tf.int64)
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32)
    return offsets, uniform([batch], seed + [0, 1])


@keras.saving.register_keras_serializable(package="clser_tf")
class RandomCropFlip(keras.layers.Layer):
    """Keras layer form of :func:`random_crop_flip`, usable as ``CLSER(replay_augment=...)``.

    ``call(images, seed)`` takes the stateless seed explicitly; CLSER passes one derived
    from its own seed and the global step.
    """

    def __init__(self, padding: int = 4, flip: bool = True, **kwargs):
        super().__init__(**kwargs)
        if padding < 0:
            raise ValueError(f"padding={padding!r} is invalid: it must be >= 0.")
        self.padding = padding
        self.flip = flip

    def call(self, images, seed):
        return random_crop_flip(images, seed, self.padding, self.flip)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "flip": self.flip}
