"""The runner's Keras callbacks, one per module."""

from clser_tf.callbacks.train_summaries import TrainSummaries
from clser_tf.callbacks.training_guard import TrainingGuard

__all__ = ["TrainSummaries", "TrainingGuard"]
