"""The runner's --strategy=mirrored with the shipped flagfiles' settings (and the runner's
own default --steps_per_execution=50) trains what one device trains.

The MLP recipe (flags/fmnist.cfg) ends within 1e-5 on every weight with the same
accuracies. The ResNet recipe (flags/cifar.cfg, 4 base filters, one epoch) ends with the
same buffer and global step; its weights are not compared: synchronised BatchNorm takes
E[x²] − E[x]² over per-replica partial sums, whose rounding (4e-6 on a moving variance
after one step) this recipe amplifies to ~1e-1 in ten steps on random images, as it
amplifies the rounding difference between synchronised and plain BatchNorm on one device
(BUILD_NOTES "Distributed training"). The small BatchNorm CNN of test_strategy_matrix.py
checks synchronised BatchNorm to 1e-4.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from clser_tf import runner
from clser_tf.distribution import make_strategy
from helpers import write_idx_dir, random_dataset, write_cifar_dir, flagfile, make_config

# flagfile: its data, what makes it tiny (the flagfile's own settings otherwise), and
# whether the weights must agree (within 1e-5) or only the buffer and the step.
RUNS = {
    "fmnist.cfg": ((28, 28), write_idx_dir, (), True),
    "cifar.cfg": ((32, 32, 3), lambda d, data: write_cifar_dir(d, data, 10),
                  ("--epochs=1", "--resnet_base_filters=4"), False),
}


def final_state(checkpoint_dir) -> dict[str, np.ndarray]:
    """The model's variables in the newest checkpoint (three models, buffer, step)."""
    reader = tf.train.load_checkpoint(str(checkpoint_dir))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("model/")}


@pytest.mark.parametrize("name", list(RUNS))
def test_mirrored_runner_with_shipped_flagfile_equals_one_device(tmp_path, name):
    shape, write, tiny, same_weights = RUNS[name]
    data_dir = write(tmp_path / "data", random_dataset(shape, 320, 50, 10))
    results, states = {}, {}
    for strategy_name in ("default", "mirrored"):
        out = tmp_path / strategy_name
        config = make_config(flagfile(name), f"--data_dir={data_dir}", f"--output_dir={out}",
                             f"--strategy={strategy_name}", "--verbose=0",
                             "--eval_batch_size=50", *tiny)
        assert config.steps_per_execution == 50  # the runner's default, as shipped
        strategy = make_strategy(strategy_name)
        assert strategy.num_replicas_in_sync == (2 if strategy_name == "mirrored" else 1)
        runner.run(config, strategy)
        results[strategy_name] = json.loads((out / "results.json").read_text())
        states[strategy_name] = final_state(out / "checkpoints")
    got, want = states["mirrored"], states["default"]
    assert got.keys() == want.keys()
    for key in want:
        if "/buffer/" in key or "global_step" in key:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
        elif same_weights:
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5, err_msg=key)
    assert int(want["model/global_step/.ATTRIBUTES/VARIABLE_VALUE"]) == 5 * (64 // config.batch_size)
    for model in ("working", "plastic", "stable"):
        for setting in ("class_il", "task_il"):
            rows = [results[s]["models"][model]["matrix"][setting] for s in results]
            assert len(rows[0]) == len(rows[1]) == 5
            if same_weights:  # row t: the accuracy on tasks 1..t after task t
                for got_row, want_row in zip(*rows):
                    np.testing.assert_allclose(got_row, want_row, atol=1e-9)
