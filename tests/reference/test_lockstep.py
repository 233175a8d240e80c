"""The lock-step check against the official implementation (opt-in: it needs torch).

Runs when ``CLSER_REFERENCE_DIR`` names a checkout of github NeurAI-Lab/CLS-ER and
``CLSER_REFERENCE_PYTHON`` a Python with torch and torchvision (BUILD_NOTES, "Faithful to
the reference", has the set-up); skipped otherwise. Each step of ours is followed by the
same step of the official ``observe()`` on the same batch with the same draws, and every
weight, BatchNorm statistic, loss term, teacher choice and the buffer are compared.
"""

import json
import os

import pytest

import lockstep

PYTHON, REFERENCE_DIR = (os.environ.get(name) for name in
                         ("CLSER_REFERENCE_PYTHON", "CLSER_REFERENCE_DIR"))
if not (PYTHON and REFERENCE_DIR):
    pytest.skip("the lock-step check needs CLSER_REFERENCE_DIR (a checkout of "
                "NeurAI-Lab/CLS-ER) and CLSER_REFERENCE_PYTHON (a Python with torch and "
                "torchvision); see BUILD_NOTES", allow_module_level=True)

# (recipe, dtype, bound on the largest relative difference of any tensor at the last step).
# In float32 the MLP's 300 steps amplify rounding differences past 1e-4 (BUILD_NOTES has
# the per-step figures), so it is held to the bound in float64, where rounding is 1e-16.
ACCEPTANCE = [("mlp", "float64", 1e-9), ("resnet18", "float32", 1e-4),
              ("resnet18", "float64", 1e-9)]


def _run(tmp_path, recipe, dtype, fused_forward=False):
    official = lockstep.OfficialProcess(str(tmp_path), PYTHON, REFERENCE_DIR)
    try:
        reports = lockstep.run(recipe, str(tmp_path), official, fused_forward, dtype)
    finally:
        official.close()
    summary = lockstep.summary(reports)
    print(json.dumps({"recipe": recipe, "dtype": dtype, "fused_forward": fused_forward,
                      **summary}))
    return summary


@pytest.mark.parametrize("recipe, dtype, bound", ACCEPTANCE)
def test_our_step_is_the_official_step(tmp_path, recipe, dtype, bound):
    summary = _run(tmp_path, recipe, dtype)
    assert summary["teacher_mismatches"] == 0, summary
    assert summary["steps_buffer_differs"] == 0, summary
    assert max(summary["last_max_rel"].values()) <= bound, summary


def test_the_fused_step_departs_from_the_official_one_only_in_the_weights(tmp_path):
    """fused_forward=True (our default) is another function with BatchNorm: reported, and
    the buffer, which no model touches, stays the reference's."""
    summary = _run(tmp_path, "resnet18", "float32", fused_forward=True)
    assert summary["steps_buffer_differs"] == 0, summary
    assert max(summary["last_max_rel"].values()) > 1e-4, summary
