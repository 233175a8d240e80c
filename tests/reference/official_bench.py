"""Times the official step on the shapes of one of our speed benchmarks, side by side:

    python -m clser_tf.bench --recipe=resnet18 --json=ours.json ...
    CLSER_REFERENCE_DIR=CLS-ER  TORCH_PYTHON tests/reference/official_bench.py ours.json

It builds the official ``CLSER`` (``models/clser.py``, its ``Buffer``, ``MNISTMLP`` or
``ResNet18``, the seq-cifar10 replay transform for an augmented recipe) with SPEC's row of
that benchmark and buffer size, and times ``observe(x, y, x)`` on random batches as our bench
times its step: ``warmup_steps`` calls first, then ``repeats`` × ``steps`` calls, the median
repeat per step. The official loader's augmentation of the current batch (done outside
``observe``, in DataLoader workers) is not timed; ours augments it inside the step.
Prints one JSON line. Needs torch and torchvision, never TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import reference_setup  # noqa: E402  (first: the official checkout on the path)
from official_model import official_clser  # noqa: E402


def _spec_table() -> dict:
    """clser_tf/spec_table.py, loaded by path (importing clser_tf would import TensorFlow)."""
    path = os.path.join(HERE, "..", "..", "clser_tf", "spec_table.py")
    spec = importlib.util.spec_from_file_location("spec_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SPEC_TABLE


def main(ours_json: str) -> None:
    with open(reference_setup.from_start(ours_json), encoding="utf-8") as f:
        ours = json.load(f)
    torch.manual_seed(0)
    row = _spec_table()[ours["benchmark"]][ours["buffer_size"]]
    shape, classes = ours["input_shape"], ours["num_classes"]
    model = official_clser(row, ours["buffer_size"], shape, classes, ours["augment"])
    if len(shape) == 3:
        shape = (shape[2], shape[0], shape[1])  # NCHW

    def step() -> None:
        x = torch.rand(ours["batch_size"], *shape)
        model.observe(x, torch.randint(0, classes, (ours["batch_size"],)), x)

    for _ in range(ours["warmup_steps"]):
        step()
    seconds = []
    for _ in range(ours["repeats"]):
        start = time.perf_counter()
        for _ in range(ours["steps"]):
            step()
        seconds.append(time.perf_counter() - start)
    ms = [1000.0 * s / ours["steps"] for s in seconds]
    print(json.dumps({"official_ms_per_step": statistics.median(ms),
                      "official_ms_per_step_all_repeats": ms, "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "ours_ms_per_step": ours["ms_per_step"]}))


if __name__ == "__main__":
    main(sys.argv[1])
