import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attention.training.checkpoint import Checkpointer, CheckpointError, read_config


class Small(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(3, width, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.linear(x), deterministic=False)


def _train_a_bit(model, optimizer, steps, seed=0):
    x = jax.random.normal(jax.random.key(seed), (4, 3))

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    return [float(step(model, optimizer)) for _ in range(steps)]


def _make(width=5, seed=0):
    model = Small(width, rngs=nnx.Rngs(seed, dropout=seed + 1))
    return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)


def test_resume_gives_the_same_losses(tmp_path):
    model, optimizer = _make()
    _train_a_bit(model, optimizer, 3)
    checkpointer = Checkpointer(tmp_path / "run")
    checkpointer.save(3, model, optimizer, meta={"data_step": 3})
    after_save = _train_a_bit(model, optimizer, 4)

    fresh_model, fresh_optimizer = _make(seed=7)  # different init and dropout stream
    meta = Checkpointer(tmp_path / "run").restore(fresh_model, fresh_optimizer)
    assert meta["data_step"] == 3 and meta["step"] == 3
    # Same parameters, Adam moments and dropout RNG: the same next losses, exactly.
    assert _train_a_bit(fresh_model, fresh_optimizer, 4) == after_save


def test_a_restored_state_is_placed_as_the_model_was_and_compiles_the_same_step(tmp_path):
    # Orbax gives back arrays committed to a device; a fresh model's are not. Arguments placed
    # otherwise lower to another program: a resumed run would compile its train step again
    # instead of finding it in the compilation cache. A state that was placed stays placed.
    model, optimizer = _make()
    Checkpointer(tmp_path / "run").save(0, model, optimizer)
    fresh_model, fresh_optimizer = _make(seed=7)
    lowered = nnx.jit(lambda m, o: o.update(m, nnx.state(m, nnx.Param))).lower
    before = lowered(fresh_model, fresh_optimizer).as_text()
    Checkpointer(tmp_path / "run").restore(fresh_model, fresh_optimizer)
    leaves = jax.tree.leaves(nnx.state((fresh_model, fresh_optimizer)))
    assert leaves and not any(x.committed for x in leaves)
    assert lowered(fresh_model, fresh_optimizer).as_text() == before

    device = jax.devices()[0]
    placed, _ = _make(seed=7)
    nnx.update(placed, jax.device_put(nnx.state(placed), device))
    Checkpointer(tmp_path / "run").restore(placed)
    assert all(x.committed and x.devices() == {device}
               for x in jax.tree.leaves(nnx.state(placed)))


def test_average_of_checkpoints_is_the_parameter_mean(tmp_path):
    model, optimizer = _make()
    checkpointer = Checkpointer(tmp_path / "run", max_to_keep=5)
    kernels = []
    for step in (1, 2, 3):
        _train_a_bit(model, optimizer, 2, seed=step)
        checkpointer.save(step, model, optimizer)
        kernels.append(np.asarray(model.linear.kernel[...]))
    averaged, _ = _make(seed=3)
    assert checkpointer.average(averaged, last_k=2) == [2, 3]
    np.testing.assert_allclose(averaged.linear.kernel[...], (kernels[1] + kernels[2]) / 2,
                               rtol=1e-6)


def test_checkpoint_of_another_shape_is_a_clear_error(tmp_path):
    model, optimizer = _make(width=5)
    checkpointer = Checkpointer(tmp_path / "run")
    checkpointer.save(1, model, optimizer)
    other, other_optimizer = _make(width=6)
    with pytest.raises(CheckpointError, match="does not match this model"):
        checkpointer.restore(other, other_optimizer)


def test_missing_checkpoint_and_config_errors(tmp_path):
    model, _ = _make()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        Checkpointer(tmp_path / "empty").restore(model)
    with pytest.raises(CheckpointError, match="no config.json"):
        read_config(tmp_path / "empty")


def test_config_of_another_model_is_refused(tmp_path):
    checkpointer = Checkpointer(tmp_path / "run")
    checkpointer.write_config({"model": {"d_model": 8}})
    checkpointer.write_config({"model": {"d_model": 8}, "train": {"steps": 2}})  # same model
    assert read_config(tmp_path / "run")["train"] == {"steps": 2}
    with pytest.raises(CheckpointError, match="another model config"):
        checkpointer.write_config({"model": {"d_model": 16}})


@pytest.mark.outside_annotations
def test_counts_and_steps_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"max_to_keep must be a positive int, got 0\."):
        Checkpointer(tmp_path / "run", max_to_keep=0)
    with pytest.raises(TypeError, match=r"max_to_keep must be a positive int, got True \(bool\)"):
        Checkpointer(tmp_path / "run", max_to_keep=True)
    model, optimizer = _make()
    checkpointer = Checkpointer(tmp_path / "run")
    with pytest.raises(TypeError, match=r"step must be a non-negative int, got 1.0 \(float\)"):
        checkpointer.save(1.0, model, optimizer)
    with pytest.raises(ValueError, match=r"step must be a non-negative int, got -1\."):
        checkpointer.restore(model, step=-1)
    checkpointer.save(np.int64(1), model, optimizer)  # a NumPy step counter is a step too
    assert checkpointer.steps == [1]
    with pytest.raises(ValueError, match=r"last_k must be a positive int, got 0\."):
        checkpointer.average(model, last_k=0)
    with pytest.raises(TypeError, match=r"last_k must be a positive int, got 2.0 \(float\)"):
        checkpointer.average(model, last_k=2.0)
    with pytest.raises(CheckpointError, match="cannot average the last 2"):
        Checkpointer(tmp_path / "empty").average(model, last_k=2)
