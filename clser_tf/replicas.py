"""Where one replica's rows sit in the global batch, for a step that works on the global
batch identically on every replica."""

from __future__ import annotations

import tensorflow as tf


class ReplicaSlices:
    """Where this replica's slice sits in the global batch (one device: the whole batch).

    ``tf.distribute`` splits a global batch into contiguous per-replica slices in replica
    order; ``gather`` rebuilds the global batch on every replica, as a sum all-reduce of
    zero-padded slices (collectives take no uint8, and all-reduce is what Keras's
    optimizer and synchronised BatchNorm use too).
    """

    def __init__(self, local_size: tf.Tensor):
        self._context = tf.distribute.get_replica_context()
        self.count = self._context.num_replicas_in_sync
        self._local_size = local_size
        if self.count == 1:
            self._start, self.global_size = 0, local_size
            return
        self._index = tf.cast(self._context.replica_id_in_sync_group, tf.int32)
        sizes = tf.cast(self._context.all_reduce(
            tf.distribute.ReduceOp.SUM,
            tf.one_hot(self._index, self.count) * tf.cast(local_size, tf.float32)), tf.int32)
        self._start = tf.reduce_sum(sizes[:self._index])
        self.global_size = tf.reduce_sum(sizes)

    def gather(self, tensor: tf.Tensor) -> tf.Tensor:
        """The concatenation over replicas of ``tensor`` (axis 0).

        Exact for images and labels: the sum is carried in float32 (float64 for 64-bit
        types), which holds every uint8 pixel and every label below 2**24 exactly.
        """
        if self.count == 1:
            return tensor
        wide = tf.float64 if tensor.dtype in (tf.float64, tf.int64) else tf.float32
        after = self.global_size - self._start - self._local_size
        padded = tf.pad(tf.cast(tensor, wide),
                        [[self._start, after]] + [[0, 0]] * (tensor.shape.rank - 1))
        return tf.cast(self._context.all_reduce(tf.distribute.ReduceOp.SUM, padded),
                       tensor.dtype)

    def own_rows(self, tensor: tf.Tensor) -> tf.Tensor:
        """This replica's rows of a tensor whose first rows are the global batch."""
        return tensor[self._start:self._start + self._local_size]

    def share_of(self, tensor: tf.Tensor) -> tf.Tensor:
        """This replica's contiguous share of a globally drawn tensor (sizes differ by <= 1)."""
        if self.count == 1:
            return tensor
        total = tf.shape(tensor)[0]
        return tensor[self._index * total // self.count:(self._index + 1) * total // self.count]
