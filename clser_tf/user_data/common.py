"""What the readers of a user's own data share: the record they return and image sizing."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from clser_tf import sources


@dataclasses.dataclass(frozen=True)
class UserData:
    """A user's dataset: arrays, class names, and where it came from."""

    data: sources.ArrayDataset  # x: uint8 (float32 for float arrays) [N,H,W] or [N,H,W,C]
    class_names: tuple[str, ...]  # label k's name
    origin: dict  # JSON-ready record for results.json


def parse_image_size(text: str) -> tuple[int, int]:
    """``"H,W"`` (the ``--image_size`` flag) as ``(H, W)``."""
    parts = text.split(",")
    try:
        size = tuple(int(part) for part in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"--image_size={text!r} is invalid: it must be H,W with two integers "
                         f">= 1.")
    return size


def check_image_size(image_size: tuple[int, int] | None) -> None:
    valid = (image_size is None or (
        isinstance(image_size, (tuple, list)) and len(image_size) == 2
        and all(isinstance(n, (int, np.integer)) and n >= 1 for n in image_size)))
    if not valid:
        raise ValueError(f"image_size={image_size!r} is invalid: it must be (H, W) with two "
                         f"integers >= 1, or None.")


def resize(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """``tf.image.resize`` (bilinear) back to the image's dtype (integers rounded, clipped)."""
    resized = tf.image.resize(image, image_size)
    if image.dtype.is_integer:
        resized = tf.clip_by_value(tf.round(resized), image.dtype.min, image.dtype.max)
    return tf.cast(resized, image.dtype)


def some(items: list) -> str:
    """At most ten items, comma-separated (a dataset may have a thousand classes)."""
    items = [str(item) for item in items]
    return ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")


def size_list(image_size: tuple[int, int] | None) -> list[int] | None:
    return None if image_size is None else [int(n) for n in image_size]
