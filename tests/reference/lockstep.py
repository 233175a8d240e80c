"""The lock-step driver: our step and the reference's, one step at a time.

After each of our steps (:class:`lockstep_ours.OurSide`) the reference side runs the same
step on the same batch and draws and reports how far apart the two states are; our state
file is removed once compared (a ResNet-18 state is 135 MB). Also a command:

    python tests/reference/lockstep.py --recipe=resnet18 [--fused_forward] [--dtype=float64]
        [--jit_compile]
        [--resync] [--folder=DIR] [--json=F]

with ``CLSER_REFERENCE_DIR`` and ``CLSER_REFERENCE_PYTHON`` set; it prints the per-step
figures and a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Callable

import lockstep_files
from lockstep_ours import RECIPES, OurSide

HERE = os.path.dirname(os.path.abspath(__file__))


class OfficialProcess:
    """``official_side.py`` in the reference Python, answering one step per request."""

    def __init__(self, folder: str, python: str, reference_dir: str, resync: bool = False):
        env = {**os.environ, "CLSER_REFERENCE_DIR": os.path.abspath(reference_dir)}
        self.proc = subprocess.Popen([python, os.path.join(HERE, "official_side.py"),
                                      os.path.abspath(folder), *(["--resync"] if resync else [])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    def __call__(self, step: int) -> dict:
        self.proc.stdin.write(f"{step}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference side ended at step {step} with exit code "
                               f"{self.proc.wait()} (its error is above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run(recipe: str, folder: str, reference: Callable[[int], dict],
        fused_forward: bool = False, dtype: str = "float32", steps: int | None = None,
        on_report: Callable[[dict], None] = lambda report: None,
        jit_compile: bool = False) -> list[dict]:
    """Steps both sides through ``recipe`` (both in ``dtype``) and returns the per-step
    reports (``jit_compile``: our step with XLA once its replay batch is full)."""
    ours = OurSide(recipe, folder, fused_forward=fused_forward, dtype=dtype,
                   jit_compile=jit_compile)
    reports = []
    for step in range(steps or ours.recipe.steps):
        ours.step(step)
        reports.append(reference(step))
        os.remove(lockstep_files.step_path(folder, "state", step))
        on_report(reports[-1])
    return reports


def summary(reports: list[dict]) -> dict:
    """The run's figures: the largest relative weight difference of each model at the last
    step and over all steps, the largest loss difference, and the totals of teacher
    mismatches and of steps whose buffers differ."""
    last = reports[-1]
    return {
        "steps": len(reports),
        "last_max_rel": last["max_rel"],
        "all_steps_max_rel": {m: max(r["max_rel"][m] for r in reports)
                              for m in last["max_rel"]},
        "max_loss_abs": {t: max(r["loss_abs"][t] for r in reports)
                         for t in lockstep_files.LOSSES},
        "teacher_choices": sum(r["teacher_choices"] for r in reports),
        "teacher_mismatches": sum(r["teacher_mismatches"] for r in reports),
        "steps_buffer_differs": sum(not r["buffer_equal"] for r in reports),
    }


def _print_report(report: dict) -> None:
    rel = " ".join(f"{m} {report['max_rel'][m]:.2e}" for m in report["max_rel"])
    print(f"step {report['step']:4d}  max rel: {rel}  loss |d| {report['loss_abs']['total']:.1e}"
          f"  teacher mismatches {report['teacher_mismatches']}/{report['teacher_choices']}"
          f"  buffer {'same' if report['buffer_equal'] else 'DIFFERS'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="mlp")
    parser.add_argument("--fused_forward", action="store_true")
    parser.add_argument("--jit_compile", action="store_true",
                        help="our step with XLA once its replay batch is full")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--resync", action="store_true",
                        help="the reference takes our state after each step (one-step figures)")
    parser.add_argument("--json", default=None, help="write the reports and summary here")
    parser.add_argument("--folder", default=None,
                        help="keep the step files here (default: a temporary folder)")
    args = parser.parse_args()
    python, reference_dir = (os.environ.get(name) for name in
                             ("CLSER_REFERENCE_PYTHON", "CLSER_REFERENCE_DIR"))
    if not (python and reference_dir):
        sys.exit("lockstep: error: set CLSER_REFERENCE_PYTHON (a Python with torch and "
                 "torchvision) and CLSER_REFERENCE_DIR (a checkout of NeurAI-Lab/CLS-ER).")
    with (contextlib.nullcontext(args.folder) if args.folder else
          tempfile.TemporaryDirectory(prefix="clser_lockstep_")) as folder:
        official = OfficialProcess(folder, python, reference_dir, args.resync)
        try:
            reports = run(args.recipe, folder, official, args.fused_forward, args.dtype,
                          args.steps, on_report=_print_report, jit_compile=args.jit_compile)
        finally:
            official.close()
    result = {"recipe": args.recipe, "fused_forward": args.fused_forward, "dtype": args.dtype,
              "jit_compile": args.jit_compile,
              "resync": args.resync,
              "summary": summary(reports), "reports": reports}
    print(json.dumps(result["summary"], indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
