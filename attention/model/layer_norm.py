"""Step 12: layer normalisation, written out (Ba, Kiros & Hinton 2016; Vaswani et al. 3.1).

Each position's vector is normalised over its D features, then scaled and shifted by learned
vectors gamma ("scale") and beta ("bias")::

    mu = mean_d x_d          sigma^2 = mean_d (x_d - mu)^2          (biased variance)
    LayerNorm(x) = gamma * (x - mu) / sqrt(sigma^2 + epsilon) + beta

Unlike batch norm, the statistics are per position: nothing mixes positions or sentences, so
layer norm cannot break causality or padding. The model uses ``flax.nnx.LayerNorm``
(:func:`attention.model.residual.make_layer_norm`); this is the same function by hand, for
notebook 06 and the tests that hold the two together.

Llama and most models after it use **RMSNorm** (Zhang & Sennrich 2019): no centring and no
bias, only the root mean square, which is cheaper and trains as well::

    RMSNorm(x) = gamma * x / sqrt(mean_d x_d^2 + epsilon)

``config.norm="rms_norm"`` builds ``flax.nnx.RMSNorm``; :func:`rms_norm` is it by hand.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from attention._checks import check_floating, check_real, shape_str


def layer_norm(
    x: Float[Array, "*B D"],
    scale: Float[Array, " D"] | None = None,
    bias: Float[Array, " D"] | None = None,
    *,
    epsilon: float = 1e-6,
) -> Float[Array, "*B D"]:
    """``scale * (x - mean) / sqrt(var + epsilon) + bias`` over the last axis (D).

    Args:
      x: ``[..., D]``, any float dtype (statistics in float32, as ``nnx.LayerNorm``).
      scale: gamma ``[D]`` (None: ones).
      bias: beta ``[D]`` (None: zeros).
      epsilon: added to the variance (> 0); the config's ``layer_norm_epsilon``.

    Returns:
      ``[..., D]`` in the dtype of ``x``.

    Raises:
      TypeError: a non-float ``x``, or an ``epsilon`` that is not a number.
      ValueError: a ``scale``/``bias`` that is not ``[D]``, an ``epsilon`` <= 0.

    >>> import jax.numpy as jnp
    >>> layer_norm(jnp.array([[1.0, 3.0]]), epsilon=1e-12).tolist()
    [[-1.0, 1.0]]
    """
    check_floating("x", x)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_inclusive=False)
    D = x.shape[-1]
    for name, vector in (("scale", scale), ("bias", bias)):
        if vector is not None and tuple(vector.shape) != (D,):
            raise ValueError(f"{name} must be [D] = [{D}] for x [..., D] = "
                             f"{shape_str(x.shape)}; got {shape_str(vector.shape)}.")
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) / jnp.sqrt(variance + epsilon)
    lead = (1,) * (x.ndim - 1)  # gamma and beta broadcast over the leading axes, explicitly
    if scale is not None:
        y = y * scale.astype(jnp.float32).reshape(*lead, D)
    if bias is not None:
        y = y + bias.astype(jnp.float32).reshape(*lead, D)
    return y.astype(x.dtype)


def rms_norm(
    x: Float[Array, "*B D"],
    scale: Float[Array, " D"] | None = None,
    *,
    epsilon: float = 1e-6,
) -> Float[Array, "*B D"]:
    """``scale * x / sqrt(mean(x^2) + epsilon)`` over the last axis (D), statistics in float32.

    Raises:
      TypeError: a non-float ``x``, or an ``epsilon`` that is not a number.
      ValueError: a ``scale`` that is not ``[D]``, an ``epsilon`` <= 0.

    >>> import jax.numpy as jnp
    >>> rms_norm(jnp.array([[3.0, -3.0]]), epsilon=1e-12).tolist()
    [[1.0, -1.0]]
    """
    check_floating("x", x)
    epsilon = check_real("epsilon", epsilon, low=0.0, low_inclusive=False)
    D = x.shape[-1]
    if scale is not None and tuple(scale.shape) != (D,):
        raise ValueError(f"scale must be [D] = [{D}] for x [..., D] = "
                         f"{shape_str(x.shape)}; got {shape_str(scale.shape)}.")
    x32 = x.astype(jnp.float32)
    y = x32 / jnp.sqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + epsilon)
    if scale is not None:
        y = y * scale.astype(jnp.float32).reshape(*(1,) * (x.ndim - 1), D)
    return y.astype(x.dtype)
