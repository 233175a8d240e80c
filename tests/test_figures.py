"""Tests of clser_tf.figures: the PNGs, the panels' cells and text, and input checks."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf

from clser_tf.figures import (accuracy_curve_figure, accuracy_matrix_figure,
                              accuracy_per_task_figure, figure_png, save_figures)

MATRIX = [[100.0],
          [0.0, 97.3],
          [55.5]]  # a short last row: its cells for tasks 2 and 3 are missing
MATRICES = {"working": {"class_il": MATRIX, "task_il": MATRIX},
            "stable": {"class_il": MATRIX, "task_il": [[100.0], [50.0, 50.0], [1.0, 2.0, 3.0]]}}
TITLE = "CLS-ER seq-cifar10 (class-IL %)"


def _panel_image(fig, index=0):
    return fig.axes[index].images[0]


def test_one_panel_per_model_and_setting_in_an_rgb_png(tmp_path):
    fig = accuracy_matrix_figure(MATRICES, TITLE)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["working class-IL", "stable class-IL", "working task-IL", "stable task-IL"]
    png = figure_png(fig)
    image = tf.io.decode_png(png, channels=3).numpy()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    plt.close(fig)


def test_cells_with_100_and_0_differ_in_colour():
    fig = accuracy_matrix_figure(MATRICES, TITLE)
    image = _panel_image(fig)
    rgba = image.to_rgba(image.get_array())
    assert not np.array_equal(rgba[0, 0], rgba[1, 0])
    plt.close(fig)


def test_missing_cells_are_masked_grey_and_blank():
    fig = accuracy_matrix_figure(MATRICES, TITLE)
    image = _panel_image(fig)
    array = image.get_array()
    for row, col in [(0, 1), (2, 1), (2, 2)]:
        assert array.mask[row, col]
    red, green, blue, _ = image.cmap.get_bad()
    assert red == green == blue != 1.0
    texts = {(t.get_position(), t.get_text()) for t in fig.axes[0].texts}
    assert all(pos not in {(1, 0), (1, 2), (2, 2)} for pos, _ in texts)
    plt.close(fig)


def test_accuracy_text_is_drawn_inside_cells_in_contrasting_ink():
    fig = accuracy_matrix_figure(MATRICES, TITLE)
    texts = {t.get_position(): t for t in fig.axes[0].texts}
    assert {pos: t.get_text() for pos, t in texts.items()} == {
        (0, 0): "100.0", (0, 1): "0.0", (1, 1): "97.3", (0, 2): "55.5"}
    assert texts[(0, 0)].get_color() != texts[(0, 1)].get_color()  # light vs. dark cell
    plt.close(fig)


def test_twenty_tasks_fit():
    matrix = [[float(5 * j) for j in range(i + 1)] for i in range(20)]
    fig = accuracy_matrix_figure({"stable": {"class_il": matrix}}, "20 tasks")
    assert _panel_image(fig).get_array().shape == (20, 20)
    figure_png(fig)
    plt.close(fig)


def test_per_task_lines_are_the_mean_over_seen_tasks():
    fig = accuracy_per_task_figure(MATRICES, TITLE)
    (class_il, task_il) = fig.axes
    lines = {line.get_label(): line.get_ydata() for line in class_il.lines}
    np.testing.assert_allclose(lines["working"], [100.0, 48.65, 55.5])
    np.testing.assert_allclose({l.get_label(): l.get_ydata() for l in task_il.lines}["stable"],
                               [100.0, 50.0, 2.0])
    plt.close(fig)


def test_save_figures_writes_pngs_and_tensorboard_images(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    save_figures({"accuracy_curve": accuracy_curve_figure([0, 100, 200],
                                                          {"stable": [10.0, 20.0, 30.0]}, "x")},
                 str(tmp_path), writer, 200)
    writer.flush()
    assert (tmp_path / "accuracy_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((tmp_path / "tb").iterdir())
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0]))
            for v in e.summary.value}
    assert "figures/accuracy_curve" in tags


@pytest.mark.parametrize("matrix, message", [
    ([[50.0], [101.5, 20.0]], r"matrix\[1\]\[0\]=101.5"),
    ([[-0.1]], r"matrix\[0\]\[0\]=-0.1"),
    ([[float("nan")]], r"matrix\[0\]\[0\]=nan"),
    ([[50.0, 60.0]], r"row 0 has 2 entries \[50.0, 60.0\]"),
    ([], "matrix is empty"),
])
def test_bad_matrix_raises_value_error_naming_the_value(matrix, message):
    with pytest.raises(ValueError, match=message):
        accuracy_matrix_figure({"stable": {"class_il": matrix}}, TITLE)


def test_the_joint_task_is_one_row_over_every_task():
    joint = {"working": {"class_il": [[90.0, 80.0, 70.0]]}}
    fig = accuracy_matrix_figure(joint, TITLE, joint=True)
    assert _panel_image(fig).get_array().shape == (1, 3)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"matrix row 0 has 3 entries"):
        accuracy_matrix_figure(joint, TITLE)
    with pytest.raises(ValueError, match=r"matrix has 2 rows; the joint task's has one"):
        accuracy_matrix_figure({"working": {"class_il": [[90.0], [1.0, 2.0]]}}, TITLE,
                               joint=True)
