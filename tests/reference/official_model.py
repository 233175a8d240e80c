"""The official ``CLSER`` (``models/clser.py``) for one of our recipes: its backbone
(``MNISTMLP`` or ``ResNet18``), SPEC's hyperparameters under the official argument names,
and the seq-cifar10 replay transform for an augmented recipe. Import it with the official
checkout on ``sys.path`` and as the working folder."""

from __future__ import annotations

from argparse import Namespace
from typing import Sequence

import numpy as np
from torch.nn import functional as F

from backbone.MNISTMLP import MNISTMLP
from backbone.ResNet18 import resnet18
from datasets.seq_cifar10 import SequentialCIFAR10
from models.clser import CLSER


def official_clser(hyperparameters: dict, buffer_size: int, input_shape: Sequence[int],
                   num_classes: int, augment: bool, base_filters: int = 64) -> CLSER:
    """A ResNet-18 for image shapes ``(H, W, C)``, else an MLP; the net in train mode."""
    if len(input_shape) == 3:
        net = resnet18(num_classes, nf=base_filters)
    else:
        net = MNISTMLP(int(np.prod(input_shape)), num_classes)
    hp = hyperparameters
    args = Namespace(lr=hp["lr"], buffer_size=buffer_size,
                     minibatch_size=hp["replay_batch_size"], reg_weight=hp["reg_weight"],
                     stable_model_update_freq=hp["stable_update_freq"],
                     stable_model_alpha=hp["stable_alpha"],
                     plastic_model_update_freq=hp["plastic_update_freq"],
                     plastic_model_alpha=hp["plastic_alpha"])
    model = CLSER(net, F.cross_entropy, args,
                  SequentialCIFAR10.get_transform() if augment else None)
    model.net.train()
    return model
