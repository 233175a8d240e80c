"""clser_tf: CLS-ER ("Learning Fast, Learning Slow", ICLR 2022) in Keras 3 / TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter quiet

from clser_tf import backbones, benchmarks, sources
from clser_tf.augment import RandomCropFlip
from clser_tf.buffer import ReservoirBuffer
from clser_tf.callbacks import ContinualEvaluation
from clser_tf.model import CLSER

__all__ = ["CLSER", "ContinualEvaluation", "RandomCropFlip", "ReservoirBuffer", "backbones",
           "benchmarks", "sources"]
__version__ = "0.1.0"
