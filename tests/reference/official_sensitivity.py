"""How far the official step drifts from itself: two official runs whose initial weights
differ by a relative ``--eps``, stepped on the same batches and draws (a folder that
``lockstep.py --folder=DIR`` wrote), compared after every step as the lock-step check
compares ours with it. This is the yardstick for a free run: a difference of rounding size
grows as fast between the reference and itself as between ours and the reference.

    CLSER_REFERENCE_DIR=CLS-ER  TORCH_PYTHON tests/reference/official_sensitivity.py DIR \
        [--steps=N] [--eps=1e-13]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

import reference_setup  # noqa: E402  (first: the official checkout on the path)
import lockstep_files  # noqa: E402
import official_side  # noqa: E402  (sets up the official code with our draws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--eps", type=float, default=1e-13)
    args = parser.parse_args()
    folder = reference_setup.from_start(args.folder)
    runs = [official_side.OfficialSide(folder), official_side.OfficialSide(folder)]
    rng = np.random.default_rng(0)
    with torch.no_grad():  # every parameter times (1 + eps * N(0, 1))
        for module in runs[1]._modules().values():
            for tensor in module.parameters():
                noise = torch.from_numpy(rng.standard_normal(tuple(tensor.shape)))
                tensor.mul_(1 + args.eps * noise.to(tensor.dtype))
    steps = args.steps or sum(name.startswith("step_") for name in os.listdir(folder))
    for step in range(steps):
        files = lockstep_files.read(lockstep_files.step_path(folder, "step", step))
        first, second = (run.run_step(step, files) for run in runs)
        print(json.dumps(lockstep_files.compare(step, first, second)), flush=True)


if __name__ == "__main__":
    main()
