"""GCIL phases (Mi et al., "Generalized Class Incremental Learning"), as CLS-ER's gcil-cifar100.

Follows the reference's sampler: in each phase, the number of classes is uniform in
``1..min(max_classes, classes with samples left)``; that many distinct classes are drawn
uniformly from the classes with samples left; ``phase_size`` class draws are made with
replacement, with probabilities proportional to the class weights (``1`` for
``"uniform"``, ``0.984 ** class`` for ``"longtail"``), redrawn until every chosen class
appears; each class then contributes ``min(its draw count, its samples left)`` training
samples, taken without replacement across phases. Labels are remapped to the order of
first appearance (within a phase, in the order the classes were drawn).

Departure: the whole phase sequence comes from its own seed up front. In the reference
the global NumPy generator drawing the phases is also used by the replay buffer, so
phases after the first depend on training as well.
"""

from __future__ import annotations

import dataclasses

import numpy as np

WEIGHT_DISTS = ("uniform", "longtail")
LONGTAIL_BASE = 0.984


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase: its classes (original ids, in drawn order), their sample counts, samples."""

    classes: tuple[int, ...]
    counts: tuple[int, ...]
    train_indices: np.ndarray  # int64 indices into the training set, grouped by class


def class_weights(classes: np.ndarray, weight_dist: str) -> np.ndarray:
    """Sampling weight of each class: 1, or ``0.984 ** class`` for the long tail."""
    if weight_dist not in WEIGHT_DISTS:
        raise ValueError(f"weight_dist={weight_dist!r} is invalid: use one of {WEIGHT_DISTS}.")
    if weight_dist == "uniform":
        return np.ones(len(classes))
    return LONGTAIL_BASE ** np.asarray(classes, np.float64)


def sample_phases(y_train: np.ndarray, weight_dist: str, seed: int, num_phases: int = 20,
                  phase_size: int = 1000, max_classes: int = 50) -> tuple[Phase, ...]:
    """Draws ``num_phases`` phases from the training labels ``y_train``, from ``seed`` alone."""
    if phase_size < max_classes:
        raise ValueError(f"phase_size={phase_size} is invalid: it must be >= max_classes="
                         f"{max_classes}, or a phase could never draw all its classes.")
    rng = np.random.default_rng(seed)
    all_classes = np.unique(y_train)
    weights = dict(zip(all_classes.tolist(), class_weights(all_classes, weight_dist)))
    pools = {c: rng.permutation(np.flatnonzero(y_train == c)) for c in all_classes.tolist()}
    used = dict.fromkeys(pools, 0)
    phases = []
    for phase in range(num_phases):
        non_empty = np.array([c for c in pools if used[c] < len(pools[c])])
        if len(non_empty) == 0:
            raise ValueError(f"every class ran out of training samples before phase {phase}.")
        num_classes = int(rng.integers(min(len(non_empty), max_classes))) + 1
        classes = rng.choice(non_empty, num_classes, replace=False).tolist()
        p = np.array([weights[c] for c in classes])
        while True:
            draws = rng.choice(len(classes), phase_size, replace=True, p=p / p.sum())
            counts = np.bincount(draws, minlength=num_classes)
            if (counts > 0).all():
                break
        counts = [min(int(n), len(pools[c]) - used[c]) for c, n in zip(classes, counts)]
        indices = [pools[c][used[c]:used[c] + n] for c, n in zip(classes, counts)]
        for c, n in zip(classes, counts):
            used[c] += n
        phases.append(Phase(tuple(classes), tuple(counts),
                            np.concatenate(indices).astype(np.int64)))
    return tuple(phases)


def first_appearance_order(phases: tuple[Phase, ...]) -> list[int]:
    """Original class ids in order of first appearance: new label ``i`` is ``order[i]``."""
    return list(dict.fromkeys(c for phase in phases for c in phase.classes))
