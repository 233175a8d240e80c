"""SPEC.md's hyperparameter table, once: the reference's best values per benchmark × buffer.

The flagfiles in ``flags/`` hold these rows (``tests/test_flagfiles.py`` checks each one
against this table). Keys are a benchmark (``gcil-cifar100/<weight_dist>`` for GCIL) and a
buffer size; values name the ``RunConfig`` settings by their flag names.
"""

from __future__ import annotations

HYPERPARAMETERS = ("lr", "batch_size", "replay_batch_size", "epochs", "reg_weight",
                   "stable_update_freq", "stable_alpha", "plastic_update_freq", "plastic_alpha")

# (lr, batch, replay batch, epochs, λ, r_s, α_s, r_p, α_p) per row.
_SEQ_MNIST = {200: (0.03, 10, 128, 1, 2.0, 0.9, 0.99, 1.0, 0.99),
              500: (0.1, 10, 32, 1, 2.0, 0.9, 0.99, 1.0, 0.99),
              5120: (0.1, 10, 32, 1, 2.0, 0.8, 0.99, 1.0, 0.99)}
_SEQ_CIFAR10 = {200: (0.1, 32, 32, 50, 0.15, 0.1, 0.999, 0.3, 0.999),
                500: (0.1, 32, 32, 50, 0.15, 0.1, 0.999, 0.9, 0.999),
                5120: (0.1, 32, 32, 50, 0.15, 0.8, 0.999, 1.0, 0.999)}
_ROWS = {
    "seq-fmnist": _SEQ_MNIST, "seq-mnist": _SEQ_MNIST,
    "seq-cifar10": _SEQ_CIFAR10, "seq-cifar100": _SEQ_CIFAR10,
    "seq-tinyimg": {200: (0.05, 32, 32, 50, 0.1, 0.04, 0.999, 0.08, 0.999),
                    500: (0.05, 32, 32, 50, 0.1, 0.05, 0.999, 0.08, 0.999),
                    5120: (0.05, 32, 32, 50, 0.1, 0.07, 0.999, 0.08, 0.999)},
    "perm-mnist": {200: (0.2, 128, 128, 1, 1.0, 0.8, 0.99, 1.0, 0.99),
                   500: (0.2, 128, 128, 1, 1.0, 0.8, 0.99, 1.0, 0.99),
                   5120: (0.2, 128, 128, 1, 1.0, 0.9, 0.99, 1.0, 0.99)},
    "rot-mnist": dict.fromkeys((200, 500, 5120), (0.2, 128, 128, 1, 0.75, 1.0, 0.999, 1.0, 0.99)),
    # mnist-360 has no epochs in SPEC: the stream is streamed once.
    "mnist-360": {200: (0.2, 16, 16, 1, 0.75, 1.0, 0.999, 1.0, 0.99),
                  500: (0.2, 16, 32, 1, 1.25, 0.9, 0.99, 1.0, 0.99),
                  1000: (0.2, 16, 128, 1, 0.75, 0.9, 0.99, 1.0, 0.99)},
    "gcil-cifar100/uniform": {200: (0.1, 32, 32, 200, 0.15, 0.6, 0.999, 0.7, 0.999),
                              500: (0.1, 32, 32, 100, 0.15, 0.6, 0.999, 0.9, 0.999),
                              1000: (0.1, 32, 32, 100, 0.15, 0.6, 0.999, 0.8, 0.999)},
    "gcil-cifar100/longtail": {200: (0.1, 32, 32, 100, 0.1, 0.6, 0.999, 0.7, 0.999),
                               500: (0.1, 32, 32, 100, 0.1, 0.6, 0.999, 0.7, 0.999),
                               1000: (0.1, 32, 32, 100, 0.1, 0.6, 0.999, 0.8, 0.999)},
}

# The settings of every row: benchmark key -> buffer size -> flag name -> value.
SPEC_TABLE: dict[str, dict[int, dict[str, float | int]]] = {
    key: {buffer: dict(zip(HYPERPARAMETERS, values)) for buffer, values in rows.items()}
    for key, rows in _ROWS.items()}


def spec_settings(key: str, buffer_size: int) -> dict[str, str | int | float]:
    """The full settings of one row: benchmark (and weight_dist), buffer size and SPEC's
    hyperparameters, by flag name."""
    benchmark, _, weight_dist = key.partition("/")
    settings = {"benchmark": benchmark, "buffer_size": buffer_size,
                **SPEC_TABLE[key][buffer_size]}
    if weight_dist:
        settings["weight_dist"] = weight_dist
    return settings
