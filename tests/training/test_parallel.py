"""Tests for attention/training/parallel.py: the mesh, the placement of a batch and of the
parameters, and one data-parallel train step that equals the step on one device.

Several devices on a CPU need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before
jax is imported; this process has imported jax already (conftest.py), so the multi-device
checks run in a fresh Python process. The argument checks run here, on one device.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from attention.training.parallel import DATA_AXIS, make_mesh, replicate, shard_batch

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
NUM_DEVICES = 4

FOUR_DEVICES = textwrap.dedent(
    """
    import jax
    import numpy as np
    import optax
    from flax import nnx

    from attention.model.config import TransformerConfig
    from attention.model.transformer import Transformer
    from attention.training.parallel import DATA_AXIS, make_mesh, replicate, shard_batch
    from attention.training.train import train_step

    jax.config.update("jax_numpy_rank_promotion", "raise")  # as conftest.py
    N = 4
    devices = jax.devices()
    assert len(devices) == N, devices

    # --- the mesh: every visible device, in order, along "data".
    mesh = make_mesh()
    assert mesh.axis_names == (DATA_AXIS,) and mesh.shape[DATA_AXIS] == N
    assert list(mesh.devices.flat) == devices
    assert make_mesh(devices[:2]).shape[DATA_AXIS] == 2

    # --- shard_batch: device i holds rows i * B/N .. (i+1) * B/N of every array.
    B, S, T, V = 8, 5, 7, 23
    rng = np.random.default_rng(0)
    src = rng.integers(4, V, (B, S)).astype(np.int32)
    tgt = rng.integers(4, V, (B, T + 1)).astype(np.int32)
    src[1, 3:] = 0  # some padding, so the masks take part
    tgt[6, 4:] = 0
    batch = {"src": src, "tgt_in": tgt[:, :-1], "tgt_out": tgt[:, 1:]}
    sharded = shard_batch(batch, mesh)
    rows = B // N
    for name, array in sharded.items():
        assert array.shape == batch[name].shape, name
        assert len(array.addressable_shards) == N, name
        for shard in array.addressable_shards:
            i = devices.index(shard.device)
            assert shard.data.shape == (rows, *batch[name].shape[1:]), (name, shard.data.shape)
            np.testing.assert_array_equal(
                np.asarray(shard.data), batch[name][i * rows : (i + 1) * rows], err_msg=name
            )
        np.testing.assert_array_equal(np.asarray(array), batch[name])
    try:
        shard_batch({"src": src[:6]}, mesh)
    except ValueError as error:
        assert "batch size 6 must be divisible by the 4 devices" in str(error), error
    else:
        raise AssertionError("a batch of 6 rows on 4 devices was accepted")

    # --- replicate: every device holds the whole of every array.
    tree = {"w": np.arange(12.0, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.int32)}
    copies = replicate(tree, mesh)
    for name, array in copies.items():
        assert {shard.device for shard in array.addressable_shards} == set(devices), name
        for shard in array.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), tree[name], err_msg=name)

    # --- one train step: batch split over 4 devices == the whole batch on one device.
    config = TransformerConfig.tiny(
        vocab_size=V, d_model=16, num_heads=2, d_ff=32, num_layers=1, max_len=16,
        dropout_rate=0.0,
    )

    def make():
        model = Transformer(config, rngs=nnx.Rngs(params=0, dropout=1))
        # Plain SGD: Adam's first step is about lr * sign(g), which turns rounding noise in
        # near-zero gradients into full-size differences; SGD's update is linear in g.
        return model, nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)

    def params(model):
        return [np.array(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]

    model_1, optimizer_1 = make()
    before = params(model_1)
    out_1 = train_step(model_1, optimizer_1, batch, label_smoothing=0.1, pad_id=0)

    model_n, optimizer_n = make()
    nnx.update((model_n, optimizer_n), replicate(nnx.state((model_n, optimizer_n)), mesh))
    inputs = shard_batch(batch, mesh)
    out_n = train_step(model_n, optimizer_n, inputs, label_smoothing=0.1, pad_id=0)
    for leaf in jax.tree.leaves(nnx.state(model_n, nnx.Param)):
        assert leaf.sharding.device_set == set(devices)  # still replicated after the update

    for name in ("loss", "nll", "accuracy", "tokens", "grad_norm"):
        np.testing.assert_allclose(out_n[name], out_1[name], rtol=1e-5, atol=1e-6, err_msg=name)
    after_1, after_n = params(model_1), params(model_n)
    assert any(not np.allclose(a, b) for a, b in zip(after_1, before))  # the step did move
    for i, (one, many) in enumerate(zip(after_1, after_n, strict=True)):
        np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6, err_msg=f"parameter {i}")
    print("four devices: OK")
    """
)


@pytest.mark.slow
def test_four_devices_place_rows_right_and_train_like_one(tmp_path):
    script = tmp_path / "four_devices.py"
    script.write_text(FOUR_DEVICES)
    flags = os.environ.get("XLA_FLAGS", "")
    env = dict(
        os.environ,
        XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={NUM_DEVICES}".strip(),
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "four devices: OK" in result.stdout


def test_one_device_mesh_and_placement():
    mesh = make_mesh(jax.devices()[:1])
    assert mesh.shape[DATA_AXIS] == 1
    batch = {"src": np.arange(15, dtype=np.int32).reshape(3, 5)}
    np.testing.assert_array_equal(shard_batch(batch, mesh)["src"], batch["src"])
    np.testing.assert_array_equal(replicate(batch, mesh)["src"], batch["src"])


def test_argument_errors():
    with pytest.raises(ValueError, match="make_mesh needs at least one device"):
        make_mesh([])
    mesh = make_mesh(jax.devices()[:1])
    with pytest.raises(ValueError, match="must have a batch axis .* got a scalar"):
        shard_batch({"step": np.int32(3)}, mesh)
    with pytest.raises(TypeError, match="every array of batch must be a JAX or NumPy array, got"):
        shard_batch({"src": np.zeros((2, 3), np.int32), "scale": 0.5}, mesh)
