"""Step 19: the learning-rate schedule of Vaswani et al. (2017), section 5.3.

    lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)

Linear warm-up for ``warmup_steps`` (4000 in the paper: small first updates while Adam's
second-moment estimates settle), then inverse square root decay; the peak, at
``step = warmup_steps``, is ``(d_model * warmup_steps)^-0.5``. Plotted in notebook 07.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from attention._checks import check_positive_int, check_real


def transformer_schedule(
    d_model: int, warmup_steps: int = 4000, *, scale: float = 1.0
) -> optax.Schedule:
    """The paper's schedule, times ``scale``, as an Optax schedule of the update count.

    Optax counts updates from 0, the paper steps from 1: ``step = count + 1``. ``scale``
    1.0 is the paper's; small models trained for few steps often use 2 or more.

    Raises:
      TypeError: ``d_model`` or ``warmup_steps`` not an int, ``scale`` not a number.
      ValueError: non-positive ``d_model``, ``warmup_steps`` or ``scale``.

    >>> lr = transformer_schedule(512, 4000)
    >>> round(float(lr(3999)), 7)   # the peak, at step 4000: (512 * 4000) ** -0.5
    0.0006988
    """
    d_model = check_positive_int("d_model", d_model)
    warmup_steps = check_positive_int("warmup_steps", warmup_steps)
    scale = check_real("scale", scale, low=0.0, low_inclusive=False)

    def schedule(count):
        step = jnp.asarray(count, jnp.float32) + 1.0
        return scale * d_model**-0.5 * jnp.minimum(step**-0.5, step * warmup_steps**-1.5)

    return schedule
