"""The console lines of a run: its choices at the start, one per task and the final table."""

from __future__ import annotations

from typing import Any


def benchmark_line(benchmark: Any, backbone: str, augment: bool) -> str:
    """The run's choices in one line: data, tasks, class order, backbone, augmentation and
    (your own data) the normalisation computed from it."""
    shape = "x".join(map(str, benchmark.input_shape))
    sizes = sorted({len(task.classes) for task in benchmark.tasks})
    line = (f"{benchmark.name}: {benchmark.num_classes} classes of {shape} "
            f"{benchmark.input_dtype} images, {len(benchmark.tasks)} "
            f"{'class pools' if benchmark.setting == 'general-continual' else 'tasks'} "
            f"({'/'.join(map(str, sizes))} classes each); backbone {backbone}, augmentation "
            f"{'crop_flip' if augment else 'none'}")
    if "class_order" in benchmark.details:
        line += f", class order {benchmark.details['class_order']}"
    if "mean" in benchmark.details:
        line += f", mean {benchmark.details['mean']}, std {benchmark.details['std']}"
    return line


def summary_line(task: int, num_tasks: int, accs: dict, seconds: float) -> str:
    """The line printed after task ``task``: each model's mean accuracy per setting."""
    parts = []
    for name, per_setting in accs.items():
        means = " ".join(f"{setting.replace('_il', '')}-IL {sum(v) / len(v):5.2f}"
                         for setting, v in per_setting.items())
        parts.append(f"{name} {means}")
    return f"task {task + 1}/{num_tasks} ({seconds:.1f} s): " + " | ".join(parts)


def final_table(models: dict) -> str:
    """The final table: per model and setting, final mean, forgetting, BWT and FWT."""
    header = f"{'model':<8} {'setting':<9} {'final':>6} {'forget':>7} {'BWT':>7} {'FWT':>7}"
    rows = [header]
    fmt = lambda v: f"{v:7.2f}" if v is not None else f"{'-':>7}"
    for name, result in models.items():
        for setting, summary in result["summary"].items():
            rows.append(f"{name:<8} {setting:<9} {summary['final_mean']:6.2f} "
                        f"{fmt(summary['forgetting'])} {fmt(summary['backward_transfer'])} "
                        f"{fmt(summary['forward_transfer'])}")
    return "\n".join(rows)


def stream_table(models: dict) -> str:
    """The final table of a general-continual stream: accuracy and per-digit accuracy."""
    rows = [f"{'model':<8} {'accuracy':>8}  per digit"]
    for name, result in models.items():
        digits = " ".join(f"{acc:5.1f}" for acc in result["per_digit"])
        rows.append(f"{name:<8} {result['accuracy']:8.2f}  {digits}")
    return "\n".join(rows)
