"""Training, steps 19-23: the paper's recipe (section 5) on one device or many (notebook 07).

Read the modules in this order (the data they train on are steps 18-18j, :mod:`attention.data`;
the reading map of the whole package is in the README and in :mod:`attention`; this list is
generated from the modules' first lines)::

    reading-map:start (python -m attention._reading_map --write)
    19  schedule.py    the learning-rate schedule of Vaswani et al. (2017), section 5.3.
    20  loss.py        the training loss, cross-entropy with label smoothing (Vaswani et al. 2017,
                       5.4).
    21  train.py       training, Adam with the paper's schedule, label smoothing, one jit-compiled
                       step.
    22  parallel.py    data parallelism with ``jax.sharding``: one program, the batch split across
                       devices.
    23  checkpoint.py  checkpoints with Orbax: weights, optimizer and random state, the config
                       beside.
    reading-map:end
"""

from attention.training.checkpoint import Checkpointer, CheckpointError, read_config
from attention.training.loss import label_smoothed_cross_entropy, projected_cross_entropy
from attention.training.parallel import make_mesh, replicate, shard_batch
from attention.training.schedule import transformer_schedule
from attention.training.train import (
    FitResult,
    NonFiniteLossError,
    TrainConfig,
    eval_step,
    evaluate_loss,
    fit,
    make_optimizer,
    train_step,
)

__all__ = [
    "transformer_schedule",
    "label_smoothed_cross_entropy",
    "projected_cross_entropy",
    "TrainConfig",
    "make_optimizer",
    "train_step",
    "eval_step",
    "evaluate_loss",
    "fit",
    "FitResult",
    "NonFiniteLossError",
    "make_mesh",
    "replicate",
    "shard_batch",
    "Checkpointer",
    "CheckpointError",
    "read_config",
]
