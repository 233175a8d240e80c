"""Tests of clser_tf.evaluation: exact accuracies from fixed-weight models, and summarize."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from clser_tf.evaluation import evaluate_models, summarize

TASK_CLASSES = [[0, 1], [2, 3]]


def _linear_model(kernel: np.ndarray) -> keras.Model:
    """A bias-free Dense model whose logits are ``x @ kernel``."""
    inputs = keras.Input((kernel.shape[0],))
    dense = keras.layers.Dense(kernel.shape[1], use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([kernel.astype("float32")])
    return model


def _dataset(logits, labels, batch_size=2) -> tf.data.Dataset:
    """uint8 inputs (the identity model's logits) and int labels, in batches."""
    x = np.asarray(logits, np.uint8)
    y = np.asarray(labels, np.int64)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


# Test set 0 (task classes 0, 1) and test set 1 (task classes 2, 3). Under the identity
# model logits == x; under the reversed model logits == x[::-1]. Comments give the
# (class-IL, task-IL) predictions of the identity model, then of the reversed model.
SET0 = _dataset([[9, 2, 1, 3],   # y=0: identity (0, 0) both right; reversed (3, 0)
                 [5, 1, 9, 2],   # y=0: identity (2, 0) task-IL fixes it; reversed (1, 1)
                 [1, 5, 2, 9],   # y=1: identity (3, 1) task-IL fixes it; reversed (0, 0)
                 [5, 1, 2, 3]],  # y=1: identity (0, 0) both wrong; reversed (3, 0)
                [0, 0, 1, 1], batch_size=3)
SET1 = _dataset([[1, 2, 9, 3],   # y=2: identity (2, 2) both right; reversed (1, 2)
                 [9, 1, 2, 5]],  # y=2: identity (0, 3) both wrong; reversed (3, 3)
                [2, 2])


def test_class_il_and_task_il_accuracies_are_exact():
    identity = _linear_model(np.eye(4))
    reversed_classes = _linear_model(np.eye(4)[::-1])  # logits reversed: x[3], ..., x[0]
    results = evaluate_models({"identity": identity, "reversed": reversed_classes},
                              [SET0, SET1], TASK_CLASSES)
    assert results["identity"] == {"class_il": [25.0, 50.0], "task_il": [75.0, 50.0]}
    assert results["reversed"] == {"class_il": [0.0, 0.0], "task_il": [25.0, 50.0]}


def test_task_il_masking_fixes_a_wrong_class_il_prediction():
    one_sample = _dataset([[5, 1, 9, 0]], [0])  # argmax over all is class 2, within task 0
    results = evaluate_models({"m": _linear_model(np.eye(4))}, [one_sample], [[0, 1]])
    assert results["m"] == {"class_il": [0.0], "task_il": [100.0]}


def test_domain_il_reports_class_il_only():
    results = evaluate_models({"m": _linear_model(np.eye(4))}, [SET0, SET1], None)
    assert results == {"m": {"class_il": [25.0, 50.0]}}


class TraceCountingModel(keras.Model):
    """Identity model counting how often its Python ``call`` runs, i.e. traces."""

    def __init__(self):
        super().__init__()
        self.traces = 0

    def call(self, inputs, training=False):
        self.traces += 1
        return tf.cast(inputs, tf.float32)


def test_more_test_sets_do_not_retrace_the_step():
    one_set = TraceCountingModel()
    evaluate_models({"m": one_set}, [SET0], TASK_CLASSES[:1])
    four_sets = TraceCountingModel()
    evaluate_models({"m": four_sets}, [SET0, SET0, SET0, SET0], TASK_CLASSES * 2)
    assert four_sets.traces == one_set.traces


def test_evaluate_models_rejects_mismatched_task_classes():
    model = {"m": _linear_model(np.eye(4))}
    with pytest.raises(ValueError, match="task_classes has 1 entries but there are 2"):
        evaluate_models(model, [SET0, SET1], [[0, 1]])
    with pytest.raises(ValueError, match=r"task_classes\[1\]=\[\]"):
        evaluate_models(model, [SET0, SET1], [[0, 1], []])
    with pytest.raises(ValueError, match="models is empty"):
        evaluate_models({}, [SET0], None)


# Hand-computed example: 3 tasks.
MATRIX = [[90.0],
          [70.0, 80.0],
          [60.0, 75.0, 95.0]]
RANDOM_INIT = [10.0, 12.0, 8.0]
BEFORE_TASK = [None, 20.0, 16.0]


def test_summarize_matches_hand_computed_metrics():
    summary = summarize(MATRIX, RANDOM_INIT, BEFORE_TASK)
    assert summary["final_mean"] == pytest.approx((60 + 75 + 95) / 3)
    # forgetting: task 0 max(90, 70) - 60 = 30; task 1 max(80) - 75 = 5 -> 17.5
    assert summary["forgetting"] == pytest.approx(17.5)
    # BWT: (60 - 90) + (75 - 80) = -35 -> -17.5
    assert summary["backward_transfer"] == pytest.approx(-17.5)
    # FWT: (20 - 12) + (16 - 8) = 16 -> 8
    assert summary["forward_transfer"] == pytest.approx(8.0)


def test_summarize_forgetting_uses_the_best_earlier_accuracy_not_the_first():
    summary = summarize([[50.0], [80.0, 90.0], [70.0, 90.0, 99.0]])
    # task 0: max(50, 80) - 70 = 10; task 1: 90 - 90 = 0
    assert summary["forgetting"] == pytest.approx(5.0)
    assert summary["backward_transfer"] == pytest.approx(((70 - 50) + 0) / 2)


def test_summarize_single_task_and_missing_fwt_inputs_give_none():
    assert summarize([[88.0]]) == {"final_mean": 88.0, "forgetting": None,
                                   "backward_transfer": None, "forward_transfer": None}
    assert summarize(MATRIX, RANDOM_INIT)["forward_transfer"] is None


@pytest.mark.parametrize("matrix, random_init, before_task, message", [
    ([], None, None, "matrix is empty"),
    ([[90.0], [70.0]], None, None, r"row 1 has 1 entries \[70.0\]"),
    ([[90.0, 10.0]], None, None, "row 0 has 2 entries"),
    (MATRIX, [10.0, 12.0], None, r"random_init has 2 entries \[10.0, 12.0\]"),
    (MATRIX, RANDOM_INIT, [None, None, 16.0], r"before_task=\[None, None, 16.0\] has None"),
])
def test_summarize_rejects_bad_shapes(matrix, random_init, before_task, message):
    with pytest.raises(ValueError, match=message):
        summarize(matrix, random_init, before_task)
