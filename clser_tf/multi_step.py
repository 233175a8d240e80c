"""Several train (or test) steps per compiled call, with no ``tf.cond`` around the step.

Keras 3.15's own multi-step function (``TensorFlowTrainer._make_function``) runs each
step inside a ``tf.cond`` within its ``tf.while_loop``. Under a strategy whose step holds
collective ops (``MirroredStrategy`` with its default ``CollectiveAllReduce``, which it
picks on CPUs, and ``MultiWorkerMirroredStrategy`` always) that graph fails at run time
with "You must feed a value for placeholder tensor 'while/body/.../while/cond/Placeholder'"
(keras-team/keras#19246), even for a stock ``Sequential`` model. That ``tf.cond`` repeats a
test the loop's own condition already makes (fewer than ``steps_per_execution`` steps
done, and the iterator has another batch), so this loop drops it; only fetching the next
batch stays conditional, and that branch holds no step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras.src.backend.tensorflow.trainer import reduce_per_replica


def multi_step_function(model: keras.Model, step: Callable[[Any], Any],
                        jit_compile: bool = False) -> Callable[[Any], Any]:
    """Keras's ``train_function``/``test_function`` contract for ``step`` (a
    ``train_step``/``test_step``): called with a (distributed) iterator, it runs up to
    ``model.steps_per_execution`` steps in one ``tf.function`` and returns the last step's
    logs, or raises ``StopIteration`` if the iterator had no batch left (a Python iterator,
    as ``train_on_batch`` passes, runs its batches one call each, as Keras's does).
    ``jit_compile``: each step (on every replica, with its reduction) is one XLA
    computation.
    """
    strategy = model.distribute_strategy
    steps = model.steps_per_execution

    @tf.autograph.experimental.do_not_convert  # as Keras's: the step is traced as written
    def one_step(data):
        return reduce_per_replica(strategy.run(step, args=(data,)), strategy,
                                  reduction="auto")

    one_step = model._autoconvert_optionals(  # Keras's handling of None inputs
        tf.function(one_step, reduce_retracing=True, jit_compile=jit_compile))

    @tf.function(reduce_retracing=True)
    @tf.autograph.experimental.do_not_convert
    def run_steps(iterator):
        no_outputs = tf.experimental.Optional.empty(None)  # its spec is set while tracing

        def more(done, outputs, batch):
            return tf.logical_and(done < steps, batch.has_value())

        def one_more(done, outputs, batch):
            outputs = tf.experimental.Optional.from_value(one_step(batch.get_value()))
            no_outputs._element_spec = outputs.element_spec
            # The next batch is fetched only if this call runs another step.
            batch = tf.cond(done + 1 < steps, iterator.get_next_as_optional, lambda: batch)
            return done + 1, outputs, batch

        _, outputs, _ = tf.while_loop(
            more, one_more, [tf.constant(0), no_outputs, iterator.get_next_as_optional()])
        outputs._element_spec = no_outputs.element_spec
        return outputs

    def function(iterator):
        if not isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
            for _, data in zip(range(steps), iterator):  # train_on_batch's one batch
                outputs = one_step(data)
            return outputs
        outputs = run_steps(iterator)
        if not outputs.has_value():
            raise StopIteration
        return outputs.get_value()

    return function


def xla_steps_function(model: keras.Model, step: Callable[[Any], Any],
                       logs: Callable[[], Any]) -> Callable[[Any], Any]:
    """As :func:`multi_step_function` with ``jit_compile``, for one replica, but a call's
    ``steps_per_execution`` batches, when it has that many and of one shape, run as ONE
    XLA computation (a loop over the stacked batches; ``logs()`` gives the logs after the
    last step): nothing runs between the steps. A call with fewer batches or with batches
    of several shapes (an epoch's last, smaller one) runs one XLA computation per step.
    The batches are taken from the iterator on the host, as Keras's ``train_on_batch``
    does, which waits for no device computation.
    """
    per_step = multi_step_function(model, step, jit_compile=True)
    steps = model.steps_per_execution
    if steps == 1:
        return per_step

    @tf.function(jit_compile=True, reduce_retracing=True)
    @tf.autograph.experimental.do_not_convert
    def run_stacked(batches):
        def one_more(i):
            step(tf.nest.map_structure(lambda t: None if t is None else t[i], batches))
            return i + 1

        tf.while_loop(lambda i: i < steps, one_more, [tf.constant(0)])
        return logs()

    def function(iterator):
        batches = [keras.tree.map_structure(
            lambda t: None if isinstance(t, tf.experimental.Optional) else t, batch)
            for _, batch in zip(range(steps), iterator)]
        if not batches:
            raise StopIteration
        leaves = [keras.tree.flatten(batch) for batch in batches]
        if len(batches) < steps or any(
                not isinstance(t, tf.Tensor) or t.shape != first.shape
                for row in leaves for t, first in zip(row, leaves[0])):
            return per_step(iter(batches))
        return run_stacked(keras.tree.map_structure(lambda *t: tf.stack(t), *batches))

    return function


def warm_up_then_static(warm_up: Callable[[Any], Any], static: Callable[[Any], Any],
                        is_static: Callable[[], bool]) -> Callable[[Any], Any]:
    """A train function that calls ``warm_up`` until ``is_static()`` (a host-side check of
    the model's state, made before each call until it first holds) and ``static`` from
    then on. ``reset()`` (called at every ``fit``, whose model state may have been
    restored since) makes it check again; ``static_now()``: whether the last call was
    ``static``."""
    static_now = False

    def function(iterator):
        nonlocal static_now
        static_now = static_now or is_static()
        return (static if static_now else warm_up)(iterator)

    def reset():
        nonlocal static_now
        static_now = False

    function.reset = reset
    function.static_now = lambda: static_now
    return function
