"""Training, steps 19-23: the paper's recipe (section 5) on one device or many (notebook 07).

Read the modules in this order (the data they train on is step 18, :mod:`attention.data`)::

    19  schedule.py    the warm-up / inverse-square-root learning rate (5.3)
    20  loss.py        cross-entropy with label smoothing (5.4), chunked over positions
    21  train.py       TrainConfig, Adam, the jit-compiled train step and the loop fit()
    22  parallel.py    data parallelism with jax.sharding
    23  checkpoint.py  Orbax checkpoints, exact resume, averaging
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
