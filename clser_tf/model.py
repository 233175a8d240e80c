"""The CLS-ER model: a working model, its plastic and stable EMA copies, and the step."""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from clser_tf.buffer import ReservoirBuffer
from clser_tf.multi_step import multi_step_function

# Random streams of one step; each draw is keyed on (seed, stream, global step).
REPLAY_STREAM, AUGMENT_STREAM, RESERVOIR_STREAM, PLASTIC_STREAM, STABLE_STREAM = range(5)
_NUM_STREAMS = 8

# Files of an export beside the SavedModel's own (``assets.extra`` is the SavedModel
# format's folder for files that the graph does not load).
CLASS_NAMES_FILE = os.path.join("assets.extra", "class_names.json")
TFLITE_FILE = "stable.tflite"


def stream_seed(seed: int | tf.Tensor, stream: int, step: int | tf.Tensor) -> tf.Tensor:
    """The stateless seed ``[2]`` of one random stream at one global step.

    Identical on every replica and after a save/load round trip, since it is derived
    only from the model's seed and its saved global step.
    """
    return tf.stack([tf.cast(seed, tf.int64) * _NUM_STREAMS + stream, tf.cast(step, tf.int64)])


def ema_alpha(step: tf.Tensor, alpha_max: float) -> tf.Tensor:
    """SPEC step 6 warm-up: ``min(1 - 1 / (step + 1), alpha_max)`` for the incremented step."""
    return tf.minimum(1.0 - 1.0 / (tf.cast(step, tf.float32) + 1.0), alpha_max)


def _check_unit_interval(name: str, value: Any, closed: bool) -> float:
    upper_ok = value <= 1 if closed else value < 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value and upper_ok):
        allowed = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name}={value!r} is invalid: it must be a number in {allowed}.")
    return float(value)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: it must be an integer >= 1.")
    return int(value)


def _write_serving_model(model: keras.Model, path: str) -> None:
    """``model`` as a SavedModel: ``serving_default`` returns named float32 ``logits`` and
    ``probabilities``, ``serve`` the float32 logits, both on the model's raw input."""
    spec = model.inputs[0]
    signature = [tf.TensorSpec(spec.shape, spec.dtype, name="inputs")]

    def logits(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(x, training=False), tf.float32)

    def outputs(x: tf.Tensor) -> dict[str, tf.Tensor]:
        z = logits(x)
        return {"logits": z, "probabilities": tf.nn.softmax(z)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", outputs, input_signature=signature)
    archive.add_endpoint("serve", logits, input_signature=signature)
    archive.write_out(path, verbose=False)


def _float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself if every layer computes in float32, else a float32 copy of it
    (same weights; 16-bit inputs of nested models become float32 too)."""
    if all(layer.compute_dtype == "float32" for layer in model.layers
           if not isinstance(layer, keras.layers.InputLayer)):
        return model

    def float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.Model):
            return _float32_copy(layer)
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    def float32_input(tensor) -> keras.KerasTensor:
        dtype = "float32" if tensor.dtype in ("bfloat16", "float16") else tensor.dtype
        return keras.Input(batch_shape=tensor.shape, dtype=dtype)

    copy = keras.models.clone_model(
        model, input_tensors=keras.tree.map_structure(float32_input, model.input),
        clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def _write_tflite(model: keras.Model, path: str) -> None:
    """``path/stable.tflite`` converted from the SavedModel of ``model`` at ``path``, or
    from a float32 copy of ``model`` if it computes in 16 bits (TFLite has no such ops)."""
    float32_model = _float32_copy(model)
    with tempfile.TemporaryDirectory() as scratch:
        source = path
        if float32_model is not model:
            _write_serving_model(float32_model, scratch)
            source = scratch
        tflite_model = tf.lite.TFLiteConverter.from_saved_model(source).convert()
    with open(os.path.join(path, TFLITE_FILE), "wb") as f:
        f.write(tflite_model)


class _ReplicaSlices:
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
    """

    def __init__(self, backbone: keras.Model, buffer_size: int = 200,
                 replay_batch_size: int = 128, reg_weight: float = 2.0,
                 stable_alpha: float = 0.99, stable_update_freq: float = 0.9,
                 plastic_alpha: float = 0.99, plastic_update_freq: float = 1.0,
                 replay_augment: Callable | None = None,
                 augment_current_batch: bool = False, seed: int = 0,
                 fused_forward: bool = True, **kwargs):
        if not isinstance(backbone, keras.Model):
            raise ValueError(f"backbone={backbone!r} is invalid: it must be a keras.Model.")
        if not backbone.built or len(backbone.inputs or []) != 1:
            raise ValueError(
                f"backbone={backbone.name!r} is invalid: it must be a built model with one "
                "input (e.g. start it with keras.Input(shape=..., dtype=...)).")
        if isinstance(reg_weight, bool) or not isinstance(reg_weight, (int, float)) or (
                reg_weight < 0):
            raise ValueError(f"reg_weight={reg_weight!r} is invalid: it must be a number >= 0.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed={seed!r} is invalid: it must be an integer.")
        if replay_augment is not None and not callable(replay_augment):
            raise ValueError(f"replay_augment={replay_augment!r} is invalid: it must be "
                             "None or a callable/Keras layer.")
        if augment_current_batch and replay_augment is None:
            raise ValueError("augment_current_batch=True is invalid without a replay_augment.")
        super().__init__(**kwargs)
        self.buffer_size = _check_positive_int("buffer_size", buffer_size)
        self.replay_batch_size = _check_positive_int("replay_batch_size", replay_batch_size)
        self.reg_weight = float(reg_weight)
        self.stable_alpha = _check_unit_interval("stable_alpha", stable_alpha, closed=False)
        self.plastic_alpha = _check_unit_interval("plastic_alpha", plastic_alpha, closed=False)
        self.stable_update_freq = _check_unit_interval(
            "stable_update_freq", stable_update_freq, closed=True)
        self.plastic_update_freq = _check_unit_interval(
            "plastic_update_freq", plastic_update_freq, closed=True)
        self.replay_augment = replay_augment
        self.augment_current_batch = bool(augment_current_batch)
        self._augment_takes_seed = replay_augment is not None and (
            "seed" in inspect.signature(
                replay_augment.call if isinstance(replay_augment, keras.layers.Layer)
                else replay_augment).parameters)
        self.seed = int(seed)
        self.fused_forward = bool(fused_forward)

        self.working_model = backbone
        self.plastic_model = self._ema_copy(backbone)
        self.stable_model = self._ema_copy(backbone)
        self.num_classes = int(backbone.outputs[0].shape[-1])
        input_spec = backbone.inputs[0]
        self.buffer = ReservoirBuffer(self.buffer_size, tuple(input_spec.shape[1:]),
                                      input_spec.dtype, name="buffer")
        self.global_step = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                           trainable=False, name="global_step")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in
                          ("loss", "ce_loss", "consistency_loss", "stable_teacher_fraction")}
        self._accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True

    @staticmethod
    def _ema_copy(backbone: keras.Model) -> keras.Model:
        """A copy of ``backbone`` with its initial weights, updated only by assignment."""
        copy = keras.models.clone_model(backbone)
        copy.set_weights(backbone.get_weights())
        for variable in copy.weights:
            variable.trainable = False  # the optimizer never sees EMA weights
        return copy

    # ----------------------------------------------------------------- Keras API
    def compile(self, optimizer="sgd", *, jit_compile: bool | str = False, **kwargs):
        """Keras ``compile``; CLS-ER brings its own loss and metrics.

        ``jit_compile`` defaults to False: the step's replay batch has a dynamic size
        while the buffer fills up, which XLA cannot compile.
        """
        for name in ("loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(name) is not None:
                raise ValueError(f"{name}={kwargs[name]!r} is invalid: CLSER defines its own "
                                 "loss (CE + reg_weight * MSE) and metrics; pass None.")
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

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
        loop, which works under every strategy (Keras 3.15's fails under collective ones)."""
        if self.train_function is None or force:
            super().make_train_function(force=True)
            if self.steps_per_execution > 1 and not self.run_eagerly:
                self.train_function = multi_step_function(self, self.train_step)
        return self.train_function

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
        return self.stable_model(inputs, training=training)

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras ``fit``; labels are checked against the number of outputs first."""
        return super().fit(*self._checked(x, y), *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras ``evaluate`` of the stable model (loss is its cross-entropy)."""
        return super().evaluate(*self._checked(x, y), *args, **kwargs)

    def _checked(self, x, y):
        """Rejects labels outside ``[0, num_classes)`` before any step runs."""
        if isinstance(x, tf.data.Dataset):
            def check(*element):
                labels = element[1]
                tf.debugging.assert_non_negative(labels, message="CLSER: labels must be >= 0")
                tf.debugging.assert_less(
                    tf.cast(labels, tf.int64), tf.constant(self.num_classes, tf.int64),
                    message=f"CLSER: labels must be < num_classes={self.num_classes}")
                return element
            return x.map(check), y
        if y is not None:
            labels = np.asarray(y)
            bad = labels[(labels < 0) | (labels >= self.num_classes)]
            if bad.size:
                raise ValueError(f"label {bad.flat[0].item()!r} is invalid: labels must be "
                                 f"integers in [0, {self.num_classes}) for this backbone.")
        return x, y

    # ----------------------------------------------------------------- the step
    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, self.buffer.storage_dtype)
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        step = tf.convert_to_tensor(self.global_step)  # one read: the steps done so far
        # Under a strategy each replica holds a slice of the global batch; the buffer, the
        # draws and the EMA updates work on the global batch, identically on every replica.
        replica = _ReplicaSlices(tf.shape(y)[0])
        if self.replay_batch_size < replica.count:
            raise ValueError(f"replay_batch_size={self.replay_batch_size} is invalid with "
                             f"{replica.count} replicas: it must be >= the number of replicas.")
        x_global, y_global = replica.gather(x), replica.gather(y)

        # 1. Replay batch without replacement (one global draw), augmented afresh.
        x_m, y_m = self.buffer.sample(self.replay_batch_size,
                                      stream_seed(self.seed, REPLAY_STREAM, step))
        augment_seed = stream_seed(self.seed, AUGMENT_STREAM, step)
        if self.augment_current_batch:
            x_aug = self._augment(tf.concat([x_global, x_m], 0), augment_seed)
            x, x_m = replica.own_rows(x_aug), x_aug[replica.global_size:]
        else:
            x_m = self._augment(x_m, augment_seed)
        num_replay = tf.shape(y_m)[0]  # global
        x_m, y_m = replica.share_of(x_m), replica.share_of(y_m)
        num_local_replay = tf.shape(y_m)[0]

        # 2. Teacher logits, per sample from the EMA model more confident in the label.
        has_replay = num_local_replay > 0  # false on every replica at once (buffer empty)
        teacher, stable_chosen = self._teacher_logits(x_m, y_m, x, has_replay)

        # 3. L = CE(merged batch) + λ · MSE(replay logits, teacher logits), as global means.
        x_all, y_all = tf.concat([x, x_m], 0), tf.concat([y, y_m], 0)
        variables = self.working_model.trainable_variables
        with tf.GradientTape() as tape:
            # Two passes run the replay batch first, as the reference's observe() does, so
            # BatchNorm's moving statistics take the merged batch last.
            replay_logits = (None if self.fused_forward else
                             self._forward_rows(self.working_model, x_m, x, has_replay))
            logits = tf.cast(self.working_model(x_all, training=True), tf.float32)
            if self.fused_forward:
                replay_logits = logits[tf.shape(y)[0]:]
            ce_loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(y_all, logits)) / tf.cast(
                replica.global_size + num_replay, tf.float32)
            consistency_loss = tf.reduce_sum(tf.square(replay_logits - teacher)) / tf.cast(
                tf.maximum(num_replay * self.num_classes, 1), tf.float32)
            loss = ce_loss + self.reg_weight * consistency_loss
            if self.working_model.losses:
                loss += tf.add_n(self.working_model.losses) / replica.count
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)

        # 4. One optimizer step on the working model (gradients summed over replicas).
        self.optimizer.apply(gradients, variables)

        # 5. Reservoir insertion of the global batch's raw samples.
        self.buffer.add(x_global, y_global, stream_seed(self.seed, RESERVOIR_STREAM, step))

        # 6. global_step += 1, then the plastic and the stable EMA updates, each with prob. r.
        self.global_step.assign_add(1)
        new_step = step + 1
        self._maybe_ema_update(self.plastic_model, self.plastic_alpha, self.plastic_update_freq,
                               stream_seed(self.seed, PLASTIC_STREAM, step), new_step)
        self._maybe_ema_update(self.stable_model, self.stable_alpha, self.stable_update_freq,
                               stream_seed(self.seed, STABLE_STREAM, step), new_step)

        # Metrics sum over replicas: each replica logs count x its share of the global loss.
        for name, value in (("loss", loss), ("ce_loss", ce_loss),
                            ("consistency_loss", consistency_loss)):
            self._trackers[name].update_state(value * replica.count)
        self._trackers["stable_teacher_fraction"].update_state(tf.cast(stable_chosen, tf.float32))
        self._accuracy.update_state(y_all, logits)
        return self._logs({m.name: m.result() for m in self.metrics})

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

    def _teacher_logits(self, x_m: tf.Tensor, y_m: tf.Tensor, fallback: tf.Tensor,
                        has_replay: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """SPEC step 2 (and 7: teachers run in training mode, no gradient)."""
        z_s = tf.stop_gradient(self._forward_rows(self.stable_model, x_m, fallback, has_replay))
        z_p = tf.stop_gradient(self._forward_rows(self.plastic_model, x_m, fallback, has_replay))
        label_prob = lambda z: tf.gather(tf.nn.softmax(z), y_m, axis=1, batch_dims=1)
        stable_chosen = label_prob(z_s) > label_prob(z_p)  # ties go to plastic
        return tf.where(stable_chosen[:, None], z_s, z_p), stable_chosen

    def _forward_rows(self, model: keras.Model, rows: tf.Tensor, fallback: tf.Tensor,
                      has_rows: tf.Tensor) -> tf.Tensor:
        """``model(rows, training=True)`` in float32, for a batch that may be empty.

        An empty batch has NaN batch statistics, and a ``tf.cond`` cannot hold the
        collective of a synchronised BatchNorm. So an empty ``rows`` runs on ``fallback``
        instead and the batch state that pass changed (moving statistics) is put back.
        """
        state = [ema_var for ema_var, var in zip(model.weights, self.working_model.weights)
                 if not var.trainable]
        saved = [tf.identity(v.value) for v in state]
        inputs = tf.concat([rows, fallback[:tf.where(has_rows, 0, tf.shape(fallback)[0])]], 0)
        logits = tf.cast(model(inputs, training=True), tf.float32)[:tf.shape(rows)[0]]
        for variable, value in zip(state, saved):
            variable.assign(tf.where(has_rows, variable.value, value))
        return logits

    def _maybe_ema_update(self, ema_model: keras.Model, alpha_max: float, freq: float,
                          seed: tf.Tensor, step: tf.Tensor) -> None:
        """θ_ema ← α·θ_ema + (1 − α)·θ_w over trainable weights, with probability ``freq``."""
        alpha = ema_alpha(step, alpha_max)

        def update():
            for ema_var, var in zip(ema_model.weights, self.working_model.weights):
                if var.trainable:
                    ema_var.assign(alpha * ema_var.value + (1.0 - alpha) * var.value)
            return tf.constant(True)

        tf.cond(tf.random.stateless_uniform([], seed) < freq, update,
                lambda: tf.constant(False))

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        logits = tf.cast(self.stable_model(x, training=False), tf.float32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        self._trackers["loss"].update_state(loss, sample_weight=tf.shape(y)[0])
        self._accuracy.update_state(y, logits)
        return self._logs({"loss": self._trackers["loss"].result(),
                           "accuracy": self._accuracy.result()})

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.stable_model(x, training=False)

    # ----------------------------------------------------------------- export and config
    def export_stable(self, path: str, *, tflite: bool = False,
                      class_names: Sequence[str] | None = None) -> None:
        """Writes the stable model as a SavedModel at ``path`` (see README, "Serving").

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
        if class_names is not None and not (
                isinstance(class_names, (list, tuple)) and len(class_names) == self.num_classes
                and all(isinstance(name, str) for name in class_names)):
            raise ValueError(f"class_names={class_names!r} is invalid: it must be a list or "
                             f"tuple of {self.num_classes} strings, one per class.")
        _write_serving_model(self.stable_model, path)
        for name, wanted in ((CLASS_NAMES_FILE, class_names is not None), (TFLITE_FILE, tflite)):
            if not wanted and os.path.exists(os.path.join(path, name)):
                os.remove(os.path.join(path, name))  # left by an earlier export there
        if class_names is not None:
            os.makedirs(os.path.join(path, os.path.dirname(CLASS_NAMES_FILE)), exist_ok=True)
            with open(os.path.join(path, CLASS_NAMES_FILE), "w", encoding="utf-8") as f:
                json.dump(list(class_names), f, indent=1)
        if tflite:
            _write_tflite(self.stable_model, path)

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
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["replay_augment"] = keras.saving.deserialize_keras_object(
            config["replay_augment"])
        return cls(**config)
