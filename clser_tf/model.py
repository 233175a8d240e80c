"""The CLS-ER model: a working model, its plastic and stable EMA copies, and the step."""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Sequence

import keras
import tensorflow as tf

from clser_tf import export
from clser_tf.buffer import ReservoirBuffer
from clser_tf.checks import (check_arguments, check_memories, check_positive_int,
                             check_unit_interval, checked_labels)
from clser_tf.draws import (AUGMENT_STREAM, PLASTIC_STREAM, REPLAY_STREAM, RESERVOIR_STREAM,
                            STABLE_STREAM, stream_seed)
from clser_tf.memories import (ema_copy, forward_rows, logits_dtype, maybe_ema_update,
                               teacher_logits)
from clser_tf.multi_step import (multi_step_function, warm_up_then_static,
                                 xla_steps_function)
from clser_tf.replicas import ReplicaSlices
from clser_tf.xla import resolve_jit_compile

@keras.saving.register_keras_serializable(package="clser_tf")
class CLSER(keras.Model):
    """CLS-ER (Arani et al., ICLR 2022) as a Keras model trained with ``fit``.

    ``backbone`` becomes the working model; the plastic and stable models are EMA copies
    of it. ``fit`` runs SPEC steps 1-6 in one compiled step; ``evaluate``/``predict``/
    ``call`` use the stable model. The replay buffer, the three models, the global step
    and the random state (a seed plus the global step) are variables saved with the model.

    Args:
        backbone: a built Keras model mapping inputs to logits. Its input dtype is the
            buffer's storage dtype (declare ``uint8`` inputs to store raw images).
        buffer_size: reservoir capacity.
        replay_batch_size: replay samples drawn per step (fewer while the buffer holds fewer).
        reg_weight: λ, the weight of the consistency (MSE) loss.
        stable_alpha, plastic_alpha: the EMA decay caps α, in [0, 1).
        stable_update_freq, plastic_update_freq: the per-step update probability r, in [0, 1].
        replay_augment: optional callable or Keras layer applied in-graph to replay inputs;
            if it accepts a ``seed`` argument it is given a stateless seed ``[2]``.
        augment_current_batch: also apply ``replay_augment`` to the current batch, in the
            same call, while the buffer stores it raw (the reference's CIFAR/TinyImg
            setting, where the loader augments and the buffer keeps raw images).
        seed: the seed of every random draw of the step.
        fused_forward: one working-model forward over the merged batch, with the
            consistency loss on its replay slice (True), or the reference's separate
            second forward over the replay batch (False).
        semantic_memories: the EMA models kept, a subset of ``("plastic", "stable")``.
            With one, it is always the teacher; with none there is no consistency loss
            and the step is Experience Replay (``replay=True``) or plain SGD.
        replay: keep the reservoir buffer and replay from it (False: the current batch
            only, nothing is stored; the buffer is not built).

    The model that serves (``call``, ``evaluate``, ``predict``, the export) is the stable
    model, else the plastic one, else the working model: :attr:`serving_model`.
    """

    def __init__(self, backbone: keras.Model, buffer_size: int = 200,
                 replay_batch_size: int = 128, reg_weight: float = 2.0,
                 stable_alpha: float = 0.99, stable_update_freq: float = 0.9,
                 plastic_alpha: float = 0.99, plastic_update_freq: float = 1.0,
                 replay_augment: Callable | None = None,
                 augment_current_batch: bool = False, seed: int = 0,
                 fused_forward: bool = True,
                 semantic_memories: Sequence[str] = ("plastic", "stable"),
                 replay: bool = True, **kwargs):
        check_arguments(backbone, reg_weight, seed, replay_augment, augment_current_batch)
        super().__init__(**kwargs)
        self.semantic_memories = check_memories(semantic_memories)
        self.buffer_size = check_positive_int("buffer_size", buffer_size)
        self.replay_batch_size = check_positive_int("replay_batch_size", replay_batch_size)
        self.reg_weight = float(reg_weight)
        self.stable_alpha = check_unit_interval("stable_alpha", stable_alpha, closed=False)
        self.plastic_alpha = check_unit_interval("plastic_alpha", plastic_alpha, closed=False)
        self.stable_update_freq = check_unit_interval(
            "stable_update_freq", stable_update_freq, closed=True)
        self.plastic_update_freq = check_unit_interval(
            "plastic_update_freq", plastic_update_freq, closed=True)
        self.replay_augment = replay_augment
        self.augment_current_batch = bool(augment_current_batch)
        self._augment_takes_seed = replay_augment is not None and (
            "seed" in inspect.signature(
                replay_augment.call if isinstance(replay_augment, keras.layers.Layer)
                else replay_augment).parameters)
        self.seed = int(seed)
        self.fused_forward = bool(fused_forward)
        self.replay = bool(replay)

        self.working_model = backbone
        self.plastic_model = (ema_copy(backbone) if "plastic" in self.semantic_memories
                              else None)
        self.stable_model = (ema_copy(backbone) if "stable" in self.semantic_memories
                             else None)
        self.num_classes = int(backbone.outputs[0].shape[-1])
        input_spec = backbone.inputs[0]
        self._storage_dtype = keras.backend.standardize_dtype(input_spec.dtype)
        self.buffer = (ReservoirBuffer(self.buffer_size, tuple(input_spec.shape[1:]),
                                       input_spec.dtype, name="buffer") if self.replay else None)
        self.global_step = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                           trainable=False, name="global_step")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in
                          ("loss", "ce_loss", "consistency_loss", "stable_teacher_fraction")}
        self._accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.xla = False  # set by compile
        self.built = True

    @property
    def serving_model(self) -> keras.Model:
        """The model that serves: the stable model, else the plastic one, else the working
        model (the variants without semantic memories report the working model)."""
        return next(m for m in (self.stable_model, self.plastic_model, self.working_model)
                    if m is not None)

    # ----------------------------------------------------------------- Keras API
    def compile(self, optimizer="sgd", *, jit_compile: bool | str = "auto", **kwargs):
        """Keras ``compile``; CLS-ER brings its own loss and metrics.

        ``jit_compile`` (``"auto"``, True or False; see :mod:`clser_tf.xla`): True runs
        every step from the first one whose buffer holds a full replay batch as one XLA
        computation (the steps before it, whose replay batch grows, run without XLA).
        """
        for name in ("loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(name) is not None:
                raise ValueError(f"{name}={kwargs[name]!r} is invalid: CLSER defines its own "
                                 "loss (CE + reg_weight * MSE) and metrics; pass None.")
        xla = resolve_jit_compile(jit_compile, self.distribute_strategy)
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        self._compile_config.config["jit_compile"] = jit_compile  # saved as given
        self.xla = xla

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Builds the optimizer; CLSER creates every other state in ``__init__``.

        Keras 3.15's own version first reduces a distributed input batch, which fails under
        MultiWorkerMirroredStrategy (keras-team/keras#20585); nothing here needs the batch.
        """
        with self.distribute_strategy.scope():
            if self.optimizer is not None and not self.optimizer.built:
                self.optimizer.build(self.trainable_variables)
            self._post_build()

    def make_train_function(self, force=False):
        """Keras's, except that several steps per call run in :mod:`clser_tf.multi_step`'s
        loop, which works under every strategy (Keras 3.15's fails under collective ones),
        and that with :attr:`xla` the steps from the first one with a full replay batch run
        in an XLA-compiled function of static shapes (:func:`warm_up_then_static`)."""
        if self.train_function is None or force:
            super().make_train_function(force=True)
            if not self.run_eagerly and (self.steps_per_execution > 1 or self.xla):
                self.train_function = multi_step_function(self, self.train_step)
            if not self.run_eagerly and self.xla:
                self.train_function = warm_up_then_static(
                    self.train_function,
                    xla_steps_function(self, functools.partial(self.train_step, static=True),
                                       self._metric_logs),
                    self.replay_is_static)
        if hasattr(self.train_function, "reset"):
            self.train_function.reset()  # the buffer may have been restored since
        return self.train_function

    def replay_is_static(self) -> bool:
        """Whether the next step's replay batch has its final size (the buffer holds
        ``min(replay_batch_size, buffer_size)`` samples), which it keeps from then on."""
        return not self.replay or int(self.buffer.num_seen.numpy()) >= min(
            self.replay_batch_size, self.buffer_size)

    def make_test_function(self, force=False):
        """As :meth:`make_train_function`, for ``evaluate``."""
        if self.test_function is None or force:
            super().make_test_function(force=True)
            if self.steps_per_execution > 1 and not self.run_eagerly:
                self.test_function = multi_step_function(self, self.test_step)
        return self.test_function

    @property
    def metrics(self):
        return [*self._trackers.values(), self._accuracy]

    def call(self, inputs, training=False):
        return self.serving_model(inputs, training=training)

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras ``fit``; labels are checked against the number of outputs first."""
        return super().fit(*checked_labels(x, y, self.num_classes), *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras ``evaluate`` of the stable model (loss is its cross-entropy)."""
        return super().evaluate(*checked_labels(x, y, self.num_classes), *args, **kwargs)

    # ----------------------------------------------------------------- the step
    def train_step(self, data, static: bool = False):
        """SPEC steps 1-6 on one batch. ``static``: the buffer holds a full replay batch
        (:meth:`replay_is_static`), so every shape is static (the step XLA compiles)."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, self._storage_dtype)
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        step = tf.convert_to_tensor(self.global_step)  # one read: the steps done so far
        # Under a strategy each replica holds a slice of the global batch; the buffer, the
        # draws and the EMA updates work on the global batch, identically on every replica.
        replica = ReplicaSlices(tf.shape(y)[0])
        if self.replay_batch_size < replica.count:
            raise ValueError(f"replay_batch_size={self.replay_batch_size} is invalid with "
                             f"{replica.count} replicas: it must be >= the number of replicas.")
        x_global, y_global = replica.gather(x), replica.gather(y)

        # 1. Replay batch without replacement (one global draw), augmented afresh.
        x, x_m, y_m, num_replay = self._replay_batch(x, x_global, y, step, replica, static)

        # 2. Teacher logits, per sample from the EMA model more confident in the label.
        # An empty replay batch (the buffer is empty) is empty on every replica at once.
        has_replay = self.replay if static else tf.shape(y_m)[0] > 0
        teacher, stable_chosen = teacher_logits(self.stable_model, self.plastic_model,
                                                self.working_model, x_m, y_m, x, has_replay)

        # 3. L = CE(merged batch) + λ · MSE(replay logits, teacher logits), as global means.
        x_all, y_all = tf.concat([x, x_m], 0), tf.concat([y, y_m], 0)
        variables = self.working_model.trainable_variables
        with tf.GradientTape() as tape:
            logits, loss, ce_loss, consistency_loss = self._loss(
                x, x_m, x_all, y_all, teacher, num_replay, has_replay, replica)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)

        # 4. One optimizer step on the working model (gradients summed over replicas).
        self.optimizer.apply(gradients, variables)

        # 5. Reservoir insertion of the global batch's raw samples.
        if self.replay:
            self.buffer.add(x_global, y_global, stream_seed(self.seed, RESERVOIR_STREAM, step))

        # 6. global_step += 1, then the plastic and the stable EMA updates, each with prob. r.
        self.global_step.assign_add(1)
        for ema_model, alpha, freq, stream in (
                (self.plastic_model, self.plastic_alpha, self.plastic_update_freq,
                 PLASTIC_STREAM),
                (self.stable_model, self.stable_alpha, self.stable_update_freq, STABLE_STREAM)):
            if ema_model is not None:
                maybe_ema_update(ema_model, self.working_model, alpha, freq,
                                 stream_seed(self.seed, stream, step), step + 1)

        self._update_metrics(replica.count, loss, ce_loss, consistency_loss, stable_chosen,
                             y_all, logits)
        return self._metric_logs()

    def _metric_logs(self) -> dict:
        """The step's logs: every metric's result so far."""
        return self._logs({m.name: m.result() for m in self.metrics})

    def _replay_batch(self, x: tf.Tensor, x_global: tf.Tensor, y: tf.Tensor, step: tf.Tensor,
                      replica: ReplicaSlices, static: bool) -> tuple[tf.Tensor, ...]:
        """SPEC step 1: this replica's current rows (augmented with
        ``augment_current_batch``), its share of the replay batch and the global replay size
        (an empty replay batch without ``replay``)."""
        if self.replay:
            x_m, y_m = self.buffer.sample(self.replay_batch_size,
                                          stream_seed(self.seed, REPLAY_STREAM, step), static)
        else:
            x_m, y_m = x_global[:0], y[:0]
        augment_seed = stream_seed(self.seed, AUGMENT_STREAM, step)
        if self.augment_current_batch:
            x_aug = self._augment(tf.concat([x_global, x_m], 0), augment_seed)
            x, x_m = replica.own_rows(x_aug), x_aug[replica.global_size:]
        else:
            x_m = self._augment(x_m, augment_seed)
        num_replay = tf.shape(y_m)[0]  # global
        x_m, y_m = replica.share_of(x_m), replica.share_of(y_m)
        return x, x_m, y_m, num_replay

    def _loss(self, x: tf.Tensor, x_m: tf.Tensor, x_all: tf.Tensor, y_all: tf.Tensor,
              teacher: tf.Tensor | None, num_replay: tf.Tensor, has_replay: tf.Tensor,
              replica: ReplicaSlices) -> tuple[tf.Tensor, ...]:
        """SPEC step 3 on this replica: the merged batch's logits, the loss and its CE and
        consistency terms, each a share of the global mean."""
        # Two passes run the replay batch first, as the reference's observe() does, so
        # BatchNorm's moving statistics take the merged batch last.
        replay_logits = (None if self.fused_forward or teacher is None else
                         forward_rows(self.working_model, self.working_model, x_m, x,
                                      has_replay))
        dtype = logits_dtype(self.working_model)
        logits = tf.cast(self.working_model(x_all, training=True), dtype)
        if self.fused_forward:
            replay_logits = logits[tf.shape(x)[0]:]
        ce_loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(y_all, logits)) / tf.cast(
            replica.global_size + num_replay, dtype)
        consistency_loss = tf.constant(0.0, dtype) if teacher is None else tf.reduce_sum(
            tf.square(replay_logits - teacher)) / tf.cast(
            tf.maximum(num_replay * self.num_classes, 1), dtype)
        loss = ce_loss + self.reg_weight * consistency_loss
        if self.working_model.losses:
            loss += tf.add_n(self.working_model.losses) / replica.count
        return logits, loss, ce_loss, consistency_loss

    def _update_metrics(self, count: int, loss: tf.Tensor, ce_loss: tf.Tensor,
                        consistency_loss: tf.Tensor, stable_chosen: tf.Tensor,
                        y_all: tf.Tensor, logits: tf.Tensor) -> None:
        # Metrics sum over replicas: each replica logs count x its share of the global loss.
        for name, value in (("loss", loss), ("ce_loss", ce_loss),
                            ("consistency_loss", consistency_loss)):
            self._trackers[name].update_state(value * count)
        self._trackers["stable_teacher_fraction"].update_state(tf.cast(stable_chosen, tf.float32))
        self._accuracy.update_state(y_all, logits)

    def _logs(self, logs: dict) -> dict:
        """Step logs; shape [1] under MultiWorkerMirroredStrategy, whose Keras 3.15 log
        reduction is a mean along axis 0 that rejects scalars (keras-team/keras#20585)."""
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _augment(self, x_m: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.replay_augment is None:
            return x_m
        if self._augment_takes_seed:
            return self.replay_augment(x_m, seed=seed)
        return self.replay_augment(x_m)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        logits = tf.cast(self.serving_model(x, training=False), tf.float32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        self._trackers["loss"].update_state(loss, sample_weight=tf.shape(y)[0])
        self._accuracy.update_state(y, logits)
        return self._logs({"loss": self._trackers["loss"].result(),
                           "accuracy": self._accuracy.result()})

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.serving_model(x, training=False)

    # ----------------------------------------------------------------- export and config
    def export_stable(self, path: str, *, tflite: bool = False,
                      class_names: Sequence[str] | None = None) -> None:
        """Writes the serving model (the stable one for CLS-ER, see :attr:`serving_model`)
        as a SavedModel at ``path`` (see README, "Serving").

        Its ``serving_default`` signature takes the backbone's raw input (``inputs``: its
        dtype and shape, batch dimension free) and returns ``logits`` and
        ``probabilities`` (softmax); ``serve(x)`` returns the logits. Outputs are float32
        whatever the dtype policy the model computes in.

        Args:
            path: the SavedModel directory (overwritten, with the two files below).
            tflite: also write ``path/stable.tflite`` with the same signature. TFLite has
                no 16-bit compute, so under a mixed policy it is converted from a float32
                copy of the stable model (same weights).
            class_names: ``num_classes`` names, written to
                ``path/assets.extra/class_names.json``, which ``clser_tf.predict`` prints.
        """
        export.export_stable(self.serving_model, path, tflite=tflite, class_names=class_names)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.working_model),
            "buffer_size": self.buffer_size, "replay_batch_size": self.replay_batch_size,
            "reg_weight": self.reg_weight,
            "stable_alpha": self.stable_alpha, "stable_update_freq": self.stable_update_freq,
            "plastic_alpha": self.plastic_alpha,
            "plastic_update_freq": self.plastic_update_freq,
            "replay_augment": keras.saving.serialize_keras_object(self.replay_augment),
            "augment_current_batch": self.augment_current_batch,
            "seed": self.seed, "fused_forward": self.fused_forward,
            "semantic_memories": list(self.semantic_memories), "replay": self.replay,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["replay_augment"] = keras.saving.deserialize_keras_object(
            config["replay_augment"])
        return cls(**config)
