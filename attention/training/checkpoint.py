"""Step 23: checkpoints with Orbax: weights, optimizer and random state, the config beside.

A checkpoint directory looks like::

    run/
      config.json          model and training configuration (written once)
      tokenizer.*          the tokenizer the model was trained with (written once)
      checkpoints/<step>/  Orbax steps: "model" (parameters and RNG state), "optimizer"
                           (Adam moments and step count) and "meta" (JSON)

Everything needed to resume *exactly* is saved: parameters, Adam moments and step count, the
dropout RNG state, and the position in the data stream (in ``meta``). So a resumed run makes
the same updates as one that never stopped.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from attention._checks import check_non_negative_int, check_positive_int

CONFIG_FILE = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, or belongs to another configuration."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_savable(tree):
    # Orbax stores plain arrays; typed PRNG keys are stored as their raw key data.
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _from_savable(tree, template):
    return jax.tree.map(_like, tree, template)


def _like(x, template):
    """A restored array as its template was: a typed key again, and not placed on a device
    where the template was not. Orbax gives back arrays committed to one device; the train
    step's compiled program differs with the placement of its arguments, so a resumed run
    would compile it anew instead of finding it in the compilation cache."""
    if isinstance(template, jax.Array) and not template.committed:
        x = jnp.asarray(np.asarray(x))
    if _is_key(template):
        return jax.random.wrap_key_data(x, impl=jax.random.key_impl(template))
    return x


def read_config(run_dir: str | pathlib.Path) -> dict[str, Any]:
    """The ``config.json`` of a run directory (raises CheckpointError naming the path)."""
    path = pathlib.Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_FILE} in {run_dir}: is this a training run directory?")
    return json.loads(path.read_text())


class Checkpointer:
    """Save and restore ``(model, optimizer)`` under ``run_dir/checkpoints``.

    Args:
      run_dir: the run's directory (created if missing).
      max_to_keep: how many recent checkpoints to keep on disk.

    Raises:
      TypeError, ValueError: ``max_to_keep`` not a positive int.
    """

    def __init__(self, run_dir: str | pathlib.Path, *, max_to_keep: int = 5):
        max_to_keep = check_positive_int("max_to_keep", max_to_keep)
        self.run_dir = pathlib.Path(run_dir).absolute()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._manager = ocp.CheckpointManager(
            self.run_dir / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json``; refuse to mix runs of different configurations."""
        path = self.run_dir / CONFIG_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("model") != config.get("model"):
                raise CheckpointError(
                    f"{self.run_dir} holds a run with another model config; use a new --out "
                    f"directory (or delete that run yourself)."
                )
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    @property
    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, model: nnx.Module, optimizer=None, *, meta: dict | None = None):
        """Save the state at ``step`` (blocks until written, so Ctrl-C cannot tear it).

        Raises:
          TypeError, ValueError: ``step`` not an int >= 0.
        """
        step = check_non_negative_int("step", step)
        items = {"model": ocp.args.StandardSave(_to_savable(nnx.to_pure_dict(nnx.state(model))))}
        if optimizer is not None:
            optimizer_state = nnx.to_pure_dict(nnx.state(optimizer, nnx.Not(nnx.Param)))
            items["optimizer"] = ocp.args.StandardSave(_to_savable(optimizer_state))
        items["meta"] = ocp.args.JsonSave(dict(meta or {}, step=step))
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)
        self._manager.wait_until_finished()

    def _restore_pure(self, step: int, templates: dict):
        """Restore the items named in ``templates`` (name -> pure dict) and the meta."""
        items = {
            name: ocp.args.StandardRestore(
                jax.tree.map(ocp.utils.to_shape_dtype_struct, _to_savable(template))
            )
            for name, template in templates.items()
        }
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**items, meta=ocp.args.JsonRestore())
            )
        except (ValueError, KeyError) as error:
            raise CheckpointError(
                f"checkpoint {step} in {self.run_dir} does not match this model "
                f"(another config?): {str(error).splitlines()[0]}"
            ) from None
        pure = {name: _from_savable(restored[name], templates[name]) for name in templates}
        return pure, dict(restored["meta"])

    def _load(self, module, name: str, step: int, state_filter=...) -> dict:
        state = nnx.state(module, state_filter)
        pure, meta = self._restore_pure(step, {name: nnx.to_pure_dict(state)})
        nnx.replace_by_pure_dict(state, pure[name])
        nnx.update(module, state)
        return meta

    def restore(self, model: nnx.Module, optimizer=None, *, step: int | None = None) -> dict:
        """Load checkpoint ``step`` (default: the latest) into ``model`` (and ``optimizer``).

        Returns:
          The ``meta`` dict saved with it (``step``, data position, ...).

        Raises:
          CheckpointError: no checkpoint, or one whose arrays do not fit this model.
          TypeError, ValueError: a ``step`` that is not an int >= 0.
        """
        step = self.latest_step() if step is None else check_non_negative_int("step", step)
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.run_dir / 'checkpoints'}.")
        meta = self._load(model, "model", step)
        if optimizer is not None:
            self._load(optimizer, "optimizer", step, nnx.Not(nnx.Param))
        return meta

    def average(self, model: nnx.Module, last_k: int) -> list[int]:
        """Load into ``model`` the mean of the parameters of the last ``last_k`` checkpoints.

        The paper (section 6.1) averaged the last 5 checkpoints of the base model: a cheap
        ensemble that usually adds a little BLEU. Returns the steps averaged.

        Raises:
          TypeError, ValueError: ``last_k`` not a positive int.
          CheckpointError: no checkpoint to average.
        """
        last_k = check_positive_int("last_k", last_k)
        steps = self.steps[-last_k:]
        if not steps:
            raise CheckpointError(f"cannot average the last {last_k} of checkpoints {self.steps}.")
        total = None
        for step in steps:
            self._load(model, "model", step)
            params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
            total = params if total is None else jax.tree.map(jnp.add, total, params)
        params = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(params, jax.tree.map(lambda x: x / len(steps), total))
        nnx.update(model, params)
        return steps

    def delete(self, step: int) -> None:
        """Remove checkpoint ``step`` from disk (to replace it with a new save of that step)."""
        self._manager.delete(step)

    def close(self) -> None:
        self._manager.close()

