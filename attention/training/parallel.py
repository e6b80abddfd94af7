"""Step 22: data parallelism with ``jax.sharding``: one program, the batch split across devices.

A ``Mesh`` names the devices along one axis, ``"data"``. The model's parameters and optimizer
state are *replicated* (every device holds a copy, ``PartitionSpec()``), and each batch is
*sharded* along its first axis (``PartitionSpec("data")``), so device i gets rows
``i * B/n .. (i+1) * B/n``. Under ``jit`` XLA partitions the train step to match: each device
computes the gradient of its rows, and an all-reduce sums them, so the update equals that of
the whole batch on one device. The same code runs on a laptop (one CPU device), a multi-GPU
host or a TPU slice.

On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (set before importing jax)
makes 8 CPU devices to try it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from attention._checks import check_shardable

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh ``("data",)`` over ``devices`` (default: every visible device)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("make_mesh needs at least one device.")
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicate(tree, mesh: Mesh):
    """Place every array of ``tree`` on all devices of ``mesh`` (parameters, optimizer state)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch, mesh: Mesh):
    """Split every array of ``batch`` along axis 0 across the mesh's ``"data"`` axis.

    Raises:
      TypeError: a leaf of ``batch`` that is not an array (a Python number, say).
      ValueError: an array without a batch axis (a scalar), or a batch size not divisible by
        the number of devices.
    """
    num_devices = mesh.shape[DATA_AXIS]

    def put(array):
        check_shardable("every array of batch", array, num_devices)
        return jax.device_put(array, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))

    return jax.tree.map(put, batch)
