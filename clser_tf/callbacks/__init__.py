"""The Keras callbacks, one per module: the runner's, and the evaluation protocol for user
code (:class:`ContinualEvaluation`)."""

from clser_tf.callbacks.continual_evaluation import ContinualEvaluation
from clser_tf.callbacks.train_summaries import TrainSummaries
from clser_tf.callbacks.training_guard import TrainingGuard

__all__ = ["ContinualEvaluation", "TrainSummaries", "TrainingGuard"]
