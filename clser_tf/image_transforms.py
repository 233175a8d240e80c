"""Fixed image transforms of the domain-IL and general-continual benchmarks, as TF ops.

:func:`rotate` turns images about their centre with the semantics of the reference's
rotations (torchvision ``F.rotate`` on a PIL image, i.e. PIL ``Image.rotate(angle)``):
counter-clockwise by ``angle`` degrees, nearest neighbour, same size, zero fill.
:func:`permute_pixels` shuffles the flattened pixels with a fixed permutation, as the
reference's ``Permutation`` transform. Both keep the images' dtype (uint8 stays uint8).
:class:`Permutation` and :class:`Rotation` are the per-task transforms of perm-mnist and
rot-mnist: one is applied to a task's training and test batches alike.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf


def rotate(images: tf.Tensor, angles: tf.Tensor) -> tf.Tensor:
    """Rotates each image of a ``[B, H, W]`` or ``[B, H, W, C]`` batch by its own angle.

    ``angles`` (``[B]``, degrees) turn counter-clockwise as displayed. As PIL does, the
    output pixel ``(x, y)`` takes the input pixel that contains the inversely rotated
    centre ``(x + 0.5, y + 0.5)`` of the output pixel, rotating about ``(W / 2, H / 2)``;
    pixels whose source falls outside the image are 0.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (3, 4):
        raise ValueError(f"images of shape {images.shape} are invalid: expected [B, H, W] or "
                         "[B, H, W, C].")
    height, width = images.shape[1], images.shape[2]
    theta = tf.cast(angles, tf.float64) * (math.pi / 180.0)
    cos = tf.cos(theta)[:, None, None]
    sin = tf.sin(theta)[:, None, None]
    x = (tf.range(width, dtype=tf.float64) + 0.5 - width / 2)[None, None, :]
    y = (tf.range(height, dtype=tf.float64) + 0.5 - height / 2)[None, :, None]
    source_col = tf.floor(cos * x - sin * y + width / 2)
    source_row = tf.floor(sin * x + cos * y + height / 2)
    inside = ((source_col >= 0) & (source_col < width)
              & (source_row >= 0) & (source_row < height))
    indices = tf.stack([tf.cast(tf.clip_by_value(source_row, 0, height - 1), tf.int32),
                        tf.cast(tf.clip_by_value(source_col, 0, width - 1), tf.int32)], -1)
    rotated = tf.gather_nd(images, indices, batch_dims=1)
    if images.shape.rank == 4:
        inside = inside[..., None]
    return tf.where(inside, rotated, tf.zeros_like(rotated))


def permute_pixels(images: tf.Tensor, permutation: tf.Tensor) -> tf.Tensor:
    """Output pixel ``i`` (flattened, row-major) is input pixel ``permutation[i]``."""
    images = tf.convert_to_tensor(images)
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    return tf.reshape(tf.gather(flat, permutation, axis=1), tf.shape(images))


@dataclasses.dataclass(frozen=True, eq=False)
class Permutation:
    """A task's fixed pixel permutation (perm-mnist): ``permutation[i]`` feeds output pixel i."""

    permutation: np.ndarray

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return permute_pixels(images, tf.constant(self.permutation, tf.int32))

    def describe(self) -> dict:
        """The transform as JSON-able values, for results.json."""
        return {"permutation": [int(i) for i in self.permutation]}


@dataclasses.dataclass(frozen=True)
class Rotation:
    """A task's fixed rotation (rot-mnist), counter-clockwise in degrees (see :func:`rotate`)."""

    degrees: float

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        angles = tf.fill([tf.shape(images)[0]], tf.constant(self.degrees, tf.float64))
        return rotate(images, angles)

    def describe(self) -> dict:
        """The transform as JSON-able values, for results.json."""
        return {"rotation_deg": float(self.degrees)}


TaskTransform = Permutation | Rotation


def draw_task_transforms(kind: str, num_tasks: int, num_pixels: int,
                         seed: int) -> tuple[TaskTransform, ...]:
    """One transform per task, drawn from ``seed`` alone.

    ``kind="permutation"``: independent uniform permutations of ``num_pixels`` pixels (every
    task is permuted, the first too, as in the reference). ``kind="rotation"``: angles
    uniform in [0, 180) degrees.
    """
    rng = np.random.default_rng(seed)
    if kind == "permutation":
        return tuple(Permutation(rng.permutation(num_pixels)) for _ in range(num_tasks))
    if kind == "rotation":
        return tuple(Rotation(float(a)) for a in rng.uniform(0.0, 180.0, num_tasks))
    raise ValueError(f"kind={kind!r} is invalid: use 'permutation' or 'rotation'.")
