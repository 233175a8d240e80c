"""Tests of clser_tf.heatmap: image format, cell colours, printed text and input checks."""

import numpy as np
import pytest
import tensorflow as tf

from clser_tf.heatmap import accuracy_heatmap, heatmap_layout, heatmap_png

MATRIX = [[100.0],
          [0.0, 97.3],
          [55.5]]  # a short last row: its cells for tasks 2 and 3 are missing
TITLE = "CLS-ER seq-cifar10 (class-IL %)"


def _cell(image: np.ndarray, row: int, col: int) -> np.ndarray:
    top, left, bottom, right = heatmap_layout(len(MATRIX), TITLE).cell_box(row, col)
    return image[top + 1:bottom - 1, left + 1:right - 1]  # inside the grid lines


def _fill(cell: np.ndarray) -> np.ndarray:
    """The cell's background colour: its most common pixel."""
    colours, counts = np.unique(cell.reshape(-1, 3), axis=0, return_counts=True)
    return colours[counts.argmax()]


def _ink_pixels(cell: np.ndarray) -> np.ndarray:
    return np.any(cell != _fill(cell), axis=-1)


def test_image_is_rgb_uint8_sized_by_the_layout():
    image = accuracy_heatmap(MATRIX, TITLE)
    layout = heatmap_layout(3, TITLE)
    assert image.dtype == np.uint8
    assert image.shape == (layout.height, layout.width, 3)


def test_cells_with_100_and_0_differ_in_colour_at_their_centres():
    image = accuracy_heatmap(MATRIX, TITLE)
    full, empty = _cell(image, 0, 0), _cell(image, 1, 0)
    assert not np.array_equal(_fill(full), _fill(empty))
    # The centre row of each cell, where the text sits, shows the two fills too.
    centre_row = full.shape[0] // 2
    assert any(np.array_equal(p, _fill(full)) for p in full[centre_row])
    assert not any(np.array_equal(p, _fill(full)) for p in empty[centre_row])


def test_missing_cells_are_grey_and_blank():
    image = accuracy_heatmap(MATRIX, TITLE)
    for row, col in [(0, 1), (2, 1), (2, 2)]:
        cell = _cell(image, row, col)
        assert not _ink_pixels(cell).any()
        red, green, blue = _fill(cell)
        assert red == green == blue != 255


def test_png_decodes_to_the_same_array():
    png = heatmap_png(MATRIX, TITLE)
    assert isinstance(png, bytes)
    np.testing.assert_array_equal(tf.io.decode_png(png, channels=3).numpy(),
                                  accuracy_heatmap(MATRIX, TITLE))


def test_accuracy_text_is_drawn_inside_cells_in_contrasting_ink():
    image = accuracy_heatmap(MATRIX, TITLE)
    for row, col in [(0, 0), (1, 0), (1, 1), (2, 0)]:
        ink = _ink_pixels(_cell(image, row, col))
        assert ink.sum() > 100  # several scaled-up glyphs, not stray pixels
    # Different numbers give different glyph patterns.
    assert not np.array_equal(_ink_pixels(_cell(image, 1, 1)), _ink_pixels(_cell(image, 2, 0)))
    # Dark ink on the light (100) cell, light ink on the dark (0) cell.
    light_cell, dark_cell = _cell(image, 0, 0), _cell(image, 1, 0)
    assert light_cell[_ink_pixels(light_cell)].mean() < _fill(light_cell).mean()
    assert dark_cell[_ink_pixels(dark_cell)].mean() > _fill(dark_cell).mean()


def test_twenty_tasks_fit():
    matrix = [[float(5 * j) for j in range(i + 1)] for i in range(20)]
    image = accuracy_heatmap(matrix, "20 tasks")
    last = heatmap_layout(20, "20 tasks").cell_box(19, 19)
    assert image.shape[0] > last[2] and image.shape[1] > last[3]


@pytest.mark.parametrize("matrix, message", [
    ([[50.0], [101.5, 20.0]], r"matrix\[1\]\[0\]=101.5"),
    ([[-0.1]], r"matrix\[0\]\[0\]=-0.1"),
    ([[float("nan")]], r"matrix\[0\]\[0\]=nan"),
    ([[50.0, 60.0]], r"row 0 has 2 entries \[50.0, 60.0\]"),
    ([], "matrix is empty"),
])
def test_bad_matrix_raises_value_error_naming_the_value(matrix, message):
    with pytest.raises(ValueError, match=message):
        accuracy_heatmap(matrix, TITLE)


def test_unsupported_title_character_is_named():
    with pytest.raises(ValueError, match=r"\['~'\]"):
        accuracy_heatmap(MATRIX, "acc ~ 50")
