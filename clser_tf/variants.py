"""The method variants a run (``--variant``) or a study compares: CLS-ER, its ablations and
the baselines, one declaration each.

Each variant is CLS-ER with some of its parts taken away, through ``CLSER``'s documented
arguments ``semantic_memories`` (which EMA models exist) and ``replay`` (whether the step
keeps and replays a buffer), plus which model it reports and whether it trains on the
joint task:

- ``clser``: the flagfile as it is (both semantic memories, replay, consistency loss).
- ``er``: Experience Replay (Mammoth's ``models/er.py``): the reservoir buffer and the
  replay batch, cross-entropy over the merged batch; no EMA model and no consistency loss.
- ``stable-only`` / ``plastic-only``: CLS-ER with one semantic memory, always the teacher.
- ``sgd``: fine-tuning, the lower bound: no buffer, no replay, plain SGD task after task.
- ``joint``: the upper bound: plain SGD on one task holding every task's training data,
  shuffled, for the same number of epochs, evaluated on every task's test set.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Variant:
    """One method variant: what it keeps of CLS-ER and which model it reports."""

    name: str
    semantic_memories: tuple[str, ...]  # CLSER(semantic_memories=...): EMA models kept
    replay: bool  # CLSER(replay=...): reservoir buffer and replay batch
    reported_model: str  # the headline model
    joint: bool = False  # one task of every task's training data
    doc: str = ""

    @property
    def models(self) -> tuple[str, ...]:
        """The models this variant has: the working model and its semantic memories."""
        return ("working", *(m for m in ("plastic", "stable") if m in self.semantic_memories))

    @property
    def consistency(self) -> bool:
        """Whether the step has a consistency loss (it needs a semantic memory)."""
        return bool(self.semantic_memories)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("clser", ("plastic", "stable"), True, "stable", doc="CLS-ER as configured"),
    Variant("er", (), True, "working", doc="Experience Replay: buffer and replay, no EMA"),
    Variant("stable-only", ("stable",), True, "stable", doc="CLS-ER with the stable model only"),
    Variant("plastic-only", ("plastic",), True, "plastic",
            doc="CLS-ER with the plastic model only"),
    Variant("sgd", (), False, "working", doc="fine-tuning: no buffer, no replay"),
    Variant("joint", (), False, "working", joint=True,
            doc="plain SGD on every task's data at once (upper bound)"),
)}
