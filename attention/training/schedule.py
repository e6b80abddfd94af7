"""Step 19: the learning-rate schedule of Vaswani et al. (2017), section 5.3.

    lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)

The rate rises linearly for ``warmup_steps`` steps and then decays as the inverse square root
of the step; the two branches meet at ``step = warmup_steps``, where the rate peaks at
``(d_model * warmup_steps)^-0.5``. Adam's early second-moment estimates are noisy, and the
warm-up keeps the first updates small while they settle. The paper used warmup_steps = 4000.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from attention._checks import check_positive_int, check_real


def transformer_schedule(
    d_model: int, warmup_steps: int = 4000, *, scale: float = 1.0
) -> optax.Schedule:
    """The paper's schedule as an Optax schedule (a function of the update count).

    Optax counts updates from 0, the paper counts steps from 1: update ``count`` uses the
    paper's ``step = count + 1``.

    Args:
      d_model: the model width.
      warmup_steps: steps of linear warm-up.
      scale: multiplies the whole schedule (1.0 is the paper's; small models trained for few
        steps often use 2 or more).

    Returns:
      ``schedule(count) -> learning rate``.

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
