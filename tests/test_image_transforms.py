"""Tests of clser_tf.image_transforms: rotation semantics, pixel permutation, per-task draws."""

import numpy as np
import pytest

from clser_tf import image_transforms
from clser_tf.image_transforms import Permutation, Rotation, draw_task_transforms, rotate


def _images(count=6, shape=(28, 28), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def test_rotate_matches_pil_image_rotate():
    pil = pytest.importorskip("PIL.Image")
    images = _images(40)
    angles = np.random.default_rng(1).uniform(0, 360, len(images))
    ours = rotate(images, angles).numpy()
    theirs = np.stack([np.asarray(pil.fromarray(image, mode="L").rotate(angle))
                       for image, angle in zip(images, angles)])
    # PIL computes nearest-neighbour coordinates in 16.16 fixed point: a pixel whose source
    # lies on a boundary to within 2^-16 may go the other way.
    assert ours.dtype == np.uint8 and ours.shape == images.shape
    assert np.mean(ours != theirs) < 1e-3
    for angle in (0.0, 30.5, 45.0, 90.0, 180.0, 270.0):
        exact = np.stack([np.asarray(pil.fromarray(image, mode="L").rotate(angle))
                          for image in images])
        np.testing.assert_array_equal(rotate(images, np.full(len(images), angle)).numpy(),
                                      exact)


def test_rotate_turns_counter_clockwise_about_the_centre():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 2, 14] = 255  # top middle
    rotated = rotate(image, [90.0]).numpy()[0]
    assert np.argwhere(rotated).tolist() == [[13, 2]]  # left middle
    np.testing.assert_array_equal(rotate(image, [360.0]).numpy(), image)


def test_rotate_fills_uncovered_pixels_with_zero_and_handles_channels():
    white = np.full((2, 28, 28, 3), 200, np.uint8)
    rotated = rotate(white, [45.0, 45.0]).numpy()
    assert rotated.shape == white.shape
    assert (rotated[:, 0, 0] == 0).all() and (rotated[:, 14, 14] == 200).all()


def test_rotate_rejects_a_single_image():
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        rotate(np.zeros((28,), np.uint8), [0.0])


def test_permutation_moves_pixel_perm_i_to_i():
    images = _images()
    permutation = np.random.default_rng(2).permutation(28 * 28)
    out = Permutation(permutation)(images).numpy()
    expected = images.reshape(len(images), -1)[:, permutation].reshape(images.shape)
    np.testing.assert_array_equal(out, expected)


def test_rotation_transform_rotates_every_image_by_its_angle():
    images = _images()
    np.testing.assert_array_equal(Rotation(33.0)(images).numpy(),
                                  rotate(images, np.full(len(images), 33.0)).numpy())
    assert Rotation(33.0).describe() == {"rotation_deg": 33.0}


def test_task_permutations_are_bijections_distinct_and_reproducible():
    first = draw_task_transforms("permutation", 20, 784, seed=5)
    again = draw_task_transforms("permutation", 20, 784, seed=5)
    other = draw_task_transforms("permutation", 20, 784, seed=6)
    assert len(first) == 20
    for t, a, o in zip(first, again, other):
        np.testing.assert_array_equal(np.sort(t.permutation), np.arange(784))
        np.testing.assert_array_equal(t.permutation, a.permutation)
        assert not np.array_equal(t.permutation, o.permutation)
        assert t.describe()["permutation"] == t.permutation.tolist()
    assert len({tuple(t.permutation) for t in first}) == 20
    assert not np.array_equal(first[0].permutation, np.arange(784))  # task 1 is permuted too


def test_task_angles_are_uniform_in_0_180_and_reproducible():
    angles = [t.degrees for t in draw_task_transforms("rotation", 2000, 784, seed=3)]
    assert min(angles) >= 0 and max(angles) < 180
    assert abs(np.mean(angles) - 90) < 5 and np.histogram(angles, 4, (0, 180))[0].min() > 400
    assert angles[:20] == [t.degrees for t in draw_task_transforms("rotation", 20, 784, 3)]
    assert angles[:20] != [t.degrees for t in draw_task_transforms("rotation", 20, 784, 4)]


def test_unknown_transform_kind_is_rejected():
    with pytest.raises(ValueError, match="'shear'"):
        image_transforms.draw_task_transforms("shear", 2, 784, 0)
