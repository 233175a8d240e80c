"""Accuracy-matrix heat-map drawn with numpy only, as an RGB uint8 image or PNG bytes.

Each cell of the lower-triangular matrix (row ``i``: after training task ``i``; column
``j``: evaluated on task ``j``) is coloured with a viridis-like colormap over 0..100 and
shows its accuracy, written with a built-in 5x7 bitmap font (plus descenders) in
whichever of dark or light ink contrasts more with the cell. Tasks are labelled from 1.
A colour bar gives the scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

CELL_WIDTH = 72
CELL_HEIGHT = 40
TEXT_SCALE = 2
TITLE_SCALE = 3

_PAD = 12
_GAP = 8
_COLORBAR_WIDTH = 16
_COLORBAR_MIN_HEIGHT = 120
_COLORBAR_TICKS = (0, 50, 100)
_TICK_LENGTH = 4

_BACKGROUND = (255, 255, 255)
_MISSING = (224, 224, 224)
_DARK_INK = (20, 20, 20)
_LIGHT_INK = (255, 255, 255)

# Viridis sampled at 9 evenly spaced points from 0 (dark purple) to 1 (yellow).
_VIRIDIS = np.array([(68, 1, 84), (71, 44, 122), (59, 82, 139), (44, 113, 142),
                     (33, 145, 140), (39, 173, 129), (92, 200, 99), (170, 220, 50),
                     (253, 231, 37)], np.float64)

# 5x7 glyphs: rows of five pixels, "#" = ink. Seven rows reach the baseline; letters with
# descenders (g j p q y ,) have two more rows below it.
_GLYPH_ROWS = {
    " ": "..... ..... ..... ..... ..... ..... .....",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    "A": ".###. #...# #...# #...# ##### #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "###.. #..#. #...# #...# #...# #..#. ###..",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# #...# .#.#. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "a": "..... ..... .###. ....# .#### #...# .####",
    "b": "#.... #.... #.##. ##..# #...# #...# ####.",
    "c": "..... ..... .###. #.... #.... #...# .###.",
    "d": "....# ....# .##.# #..## #...# #...# .####",
    "e": "..... ..... .###. #...# ##### #.... .###.",
    "f": "..##. .#..# .#... ###.. .#... .#... .#...",
    "g": "..... ..... .#### #...# #...# #...# .#### ....# .###.",
    "h": "#.... #.... #.##. ##..# #...# #...# #...#",
    "i": "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
    "j": "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
    "k": "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
    "l": ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "m": "..... ..... ##.#. #.#.# #.#.# #...# #...#",
    "n": "..... ..... #.##. ##..# #...# #...# #...#",
    "o": "..... ..... .###. #...# #...# #...# .###.",
    "p": "..... ..... ####. #...# #...# #...# ####. #.... #....",
    "q": "..... ..... .#### #...# #...# #...# .#### ....# ....#",
    "r": "..... ..... #.##. ##..# #.... #.... #....",
    "s": "..... ..... .###. #.... .###. ....# ####.",
    "t": ".#... .#... ###.. .#... .#... .#..# ..##.",
    "u": "..... ..... #...# #...# #...# #..## .##.#",
    "v": "..... ..... #...# #...# #...# .#.#. ..#..",
    "w": "..... ..... #...# #...# #.#.# #.#.# .#.#.",
    "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
    "y": "..... ..... #...# #...# #...# #...# .#### ....# .###.",
    "z": "..... ..... ##### ...#. ..#.. .#... #####",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... ..... .##.. .##.. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    "[": ".###. .#... .#... .#... .#... .#... .###.",
    "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "'": "..#.. ..#.. ..... ..... ..... ..... .....",
    "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
}
_GLYPH_WIDTH = 5
_BODY_ROWS = 7  # cap height: rows above the baseline, used to centre text vertically
_LINE_ROWS = 9  # body plus descender rows: the height of every text mask
_FONT = {char: np.array([[pixel == "#" for pixel in row]
                         for row in (rows.split() + ["....."] * _LINE_ROWS)[:_LINE_ROWS]])
         for char, rows in _GLYPH_ROWS.items()}


@dataclasses.dataclass(frozen=True)
class HeatmapLayout:
    """Pixel geometry of a heat-map; ``cell_box`` locates the cell of row ``i``, column ``j``."""

    n_tasks: int
    height: int
    width: int
    col_label_top: int
    col_index_top: int
    grid_top: int
    grid_left: int
    plot_width: int
    colorbar_height: int
    row_label_top: int
    row_index_right: int
    colorbar_left: int

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Returns ``(top, left, bottom, right)`` of a cell, bottom and right exclusive."""
        top = self.grid_top + row * CELL_HEIGHT
        left = self.grid_left + col * CELL_WIDTH
        return top, left, top + CELL_HEIGHT, left + CELL_WIDTH


def heatmap_layout(n_tasks: int, title: str, row_label: str = "after task",
                   col_label: str = "task") -> HeatmapLayout:
    """Computes where the title, labels, cells and colour bar of a heat-map go."""
    line_height = _LINE_ROWS * TEXT_SCALE
    grid_size = (n_tasks * CELL_HEIGHT, n_tasks * CELL_WIDTH)
    plot_width = max(grid_size[1], _text_width(col_label, TEXT_SCALE))
    col_label_top = _PAD + _LINE_ROWS * TITLE_SCALE + _GAP
    col_index_top = col_label_top + line_height + _GAP // 2
    grid_top = col_index_top + line_height
    row_index_right = _PAD + line_height + _GAP + _text_width(str(n_tasks), TEXT_SCALE)
    grid_left = row_index_right + _GAP
    colorbar_left = grid_left + plot_width + 2 * _GAP
    tick_labels_right = (colorbar_left + _COLORBAR_WIDTH + _TICK_LENGTH + _GAP // 2
                         + _text_width(str(max(_COLORBAR_TICKS)), TEXT_SCALE))
    row_label_length = _text_width(row_label, TEXT_SCALE)
    row_label_top = grid_top + max(0, (grid_size[0] - row_label_length) // 2)
    colorbar_height = max(grid_size[0], _COLORBAR_MIN_HEIGHT)
    bottom = max(grid_top + colorbar_height + line_height, row_label_top + row_label_length)
    return HeatmapLayout(
        n_tasks=n_tasks, height=bottom + _PAD,
        width=max(tick_labels_right + _PAD, _text_width(title, TITLE_SCALE) + 2 * _PAD),
        col_label_top=col_label_top, col_index_top=col_index_top, grid_top=grid_top,
        grid_left=grid_left, plot_width=plot_width, colorbar_height=colorbar_height,
        row_label_top=row_label_top,
        row_index_right=row_index_right, colorbar_left=colorbar_left)


def accuracy_heatmap(matrix: Sequence[Sequence[float]], title: str,
                     row_label: str = "after task", col_label: str = "task") -> np.ndarray:
    """Draws the accuracy matrix as an RGB ``uint8`` image of shape ``[H, W, 3]``.

    ``matrix[i][j]`` is the accuracy (0..100) on task ``j`` after training task ``i``; row
    ``i`` holds at most ``i + 1`` values and the cells it lacks are drawn grey. Texts may use
    letters, digits, space and `` .,-:_%()/[]+='!?#``. The result suits
    ``tf.summary.image(name, image[None])``.
    """
    rows = _validate_matrix(matrix)
    layout = heatmap_layout(len(rows), title, row_label, col_label)
    image = np.full((layout.height, layout.width, 3), _BACKGROUND, np.uint8)
    _draw_labels(image, layout, title, row_label, col_label)
    _draw_cells(image, layout, rows)
    _draw_colorbar(image, layout)
    return image


def heatmap_png(matrix: Sequence[Sequence[float]], title: str, row_label: str = "after task",
                col_label: str = "task") -> bytes:
    """Returns :func:`accuracy_heatmap` encoded as PNG bytes."""
    return tf.io.encode_png(accuracy_heatmap(matrix, title, row_label, col_label)).numpy()


def _validate_matrix(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    if len(matrix) == 0:
        raise ValueError("matrix is empty: it needs one row per trained task.")
    for i, row in enumerate(matrix):
        if len(row) > i + 1:
            raise ValueError(f"matrix row {i} has {len(row)} entries {list(row)!r}; a "
                             f"lower-triangular matrix allows at most i + 1 = {i + 1}.")
        for j, value in enumerate(row):
            if not (isinstance(value, (int, float, np.integer, np.floating))
                    and 0.0 <= value <= 100.0):
                raise ValueError(f"matrix[{i}][{j}]={value!r} is not an accuracy in 0..100.")
    return [[float(value) for value in row] for row in matrix]


def _draw_labels(image: np.ndarray, layout: HeatmapLayout, title: str, row_label: str,
                 col_label: str) -> None:
    title_mask = _text_mask(title, TITLE_SCALE)
    _paste(image, title_mask, _PAD, (layout.width - title_mask.shape[1]) // 2, _DARK_INK)
    _paste_centred(image, _text_mask(col_label, TEXT_SCALE), layout.col_label_top,
                   layout.grid_left + layout.plot_width // 2)
    row_mask = np.rot90(_text_mask(row_label, TEXT_SCALE))  # reads bottom to top
    _paste(image, row_mask, layout.row_label_top, _PAD, _DARK_INK)
    for task in range(layout.n_tasks):
        top, left, bottom, right = layout.cell_box(task, task)
        index = _text_mask(str(task + 1), TEXT_SCALE)
        _paste_centred(image, index, layout.col_index_top, (left + right) // 2)
        _paste(image, index, _centred_top(top, bottom),
               layout.row_index_right - index.shape[1], _DARK_INK)


def _draw_cells(image: np.ndarray, layout: HeatmapLayout, rows: list[list[float]]) -> None:
    for i in range(layout.n_tasks):
        for j in range(layout.n_tasks):
            top, left, bottom, right = layout.cell_box(i, j)
            inner = image[top + 1:bottom - 1, left + 1:right - 1]  # 2 px white grid lines
            if j >= len(rows[i]):
                inner[:] = _MISSING
                continue
            fill = _colormap(np.array(rows[i][j]))
            inner[:] = fill
            text = _text_mask(f"{rows[i][j]:.1f}", TEXT_SCALE)
            _paste(image, text, _centred_top(top, bottom),
                   (left + right - text.shape[1]) // 2, _ink_for(fill))


def _draw_colorbar(image: np.ndarray, layout: HeatmapLayout) -> None:
    height = layout.colorbar_height
    left, right = layout.colorbar_left, layout.colorbar_left + _COLORBAR_WIDTH
    values = np.linspace(100.0, 0.0, height)
    image[layout.grid_top:layout.grid_top + height, left:right] = _colormap(values)[:, None]
    for tick in _COLORBAR_TICKS:
        y = layout.grid_top + round((100 - tick) / 100 * (height - 1))
        image[y, right:right + _TICK_LENGTH] = _DARK_INK
        label = _text_mask(str(tick), TEXT_SCALE)
        _paste(image, label, _centred_top(y, y + 1), right + _TICK_LENGTH + _GAP // 2,
               _DARK_INK)


def _colormap(values: np.ndarray) -> np.ndarray:
    """Maps accuracies in 0..100 to viridis-like ``uint8`` RGB, shape ``values.shape + (3,)``."""
    anchors = np.linspace(0.0, 100.0, len(_VIRIDIS))
    rgb = [np.interp(values, anchors, _VIRIDIS[:, c]) for c in range(3)]
    return np.rint(np.stack(rgb, axis=-1)).astype(np.uint8)


def _ink_for(fill: np.ndarray) -> tuple[int, int, int]:
    """Dark or light ink, whichever has the higher WCAG contrast ratio against ``fill``."""
    fill_luminance = _relative_luminance(fill)
    dark = (fill_luminance + 0.05) / (_relative_luminance(_DARK_INK) + 0.05)
    light = (_relative_luminance(_LIGHT_INK) + 0.05) / (fill_luminance + 0.05)
    return _DARK_INK if dark >= light else _LIGHT_INK


def _relative_luminance(rgb) -> float:
    channels = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92,
                      ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def _text_width(text: str, scale: int) -> int:
    return max(0, (len(text) * (_GLYPH_WIDTH + 1) - 1) * scale)


def _centred_top(top: int, bottom: int) -> int:
    """Top row for text at ``TEXT_SCALE`` whose body is centred between ``top`` and ``bottom``."""
    return (top + bottom - _BODY_ROWS * TEXT_SCALE) // 2


def _text_mask(text: str, scale: int) -> np.ndarray:
    """Ink mask of ``text``, ``_LINE_ROWS * scale`` tall, glyphs one font pixel apart."""
    unknown = sorted(set(text) - _FONT.keys())
    if unknown:
        raise ValueError(f"text {text!r} has characters {unknown!r} the built-in font lacks; "
                         f"it has {''.join(sorted(_FONT))!r}.")
    spacer = np.zeros((_LINE_ROWS, 1), bool)
    pieces = [piece for char in text for piece in (_FONT[char], spacer)][:-1]
    mask = (np.concatenate(pieces, axis=1) if pieces
            else np.zeros((_LINE_ROWS, 0), bool))
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def _paste(image: np.ndarray, mask: np.ndarray, top: int, left: int,
           color: tuple[int, int, int]) -> None:
    image[top:top + mask.shape[0], left:left + mask.shape[1]][mask] = color


def _paste_centred(image: np.ndarray, mask: np.ndarray, top: int, centre_x: int) -> None:
    _paste(image, mask, top, centre_x - mask.shape[1] // 2, _DARK_INK)
