"""Step 10: the position-wise feed-forward network (Vaswani et al. 2017, section 3.3).

After attention has mixed information *between* positions, each position is transformed on
its own by the same two-layer network::

    FFN(x) = max(0, x W_1 + b_1) W_2 + b_2        W_1: [D, F], W_2: [F, D]

"Position-wise" means the network is applied to every position separately and identically
(a 1x1 convolution, as the paper puts it): it never mixes positions, so it cannot break
causality or padding. The inner width ``d_ff`` (F = 2048 in the base model) is four times
``d_model``; these two matrices hold about two thirds of each encoder layer's parameters.

Later models changed the non-linearity (``config.feed_forward``): GPT-2 uses GELU
(Hendrycks & Gimpel 2016) in its tanh approximation; Llama uses a *gated* network, SwiGLU
(Shazeer 2020, "GLU Variants Improve Transformer"), with a third matrix and no biases::

    SwiGLU(x) = (silu(x W_g) * x W_1) W_2      silu(z) = z sigmoid(z)      W_g, W_1: [D, F]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
}
"""The non-linearity of :class:`FeedForward` by the name of ``config.feed_forward``."""


def feed_forward(
    x: Float[Array, "*B T D"],
    w1: Float[Array, "D F"],
    b1: Float[Array, " F"],
    w2: Float[Array, "F D"],
    b2: Float[Array, " D"],
) -> Float[Array, "*B T D"]:
    """``max(0, x W_1 + b_1) W_2 + b_2`` at every position (section 3.3, equation 2).

    >>> x = jnp.array([[1.0, -1.0]])
    >>> feed_forward(x, jnp.eye(2), jnp.zeros(2), jnp.eye(2), jnp.ones(2)).tolist()
    [[2.0, 1.0]]
    """
    lead = (1,) * (x.ndim - 1)  # biases broadcast over batch and positions, explicitly
    hidden_BTF = jax.nn.relu(jnp.einsum("...TD,DF->...TF", x, w1) + b1.reshape(*lead, -1))
    return jnp.einsum("...TF,FD->...TD", hidden_BTF, w2) + b2.reshape(*lead, -1)


def swiglu_feed_forward(
    x: Float[Array, "*B T D"],
    w_gate: Float[Array, "D F"],
    w1: Float[Array, "D F"],
    w2: Float[Array, "F D"],
) -> Float[Array, "*B T D"]:
    """``(silu(x W_g) * x W_1) W_2`` at every position (Shazeer 2020, equation 6; Llama).

    >>> x = jnp.array([[1.0, -1.0]])
    >>> [round(float(v), 4) for v in swiglu_feed_forward(x, *[jnp.eye(2)] * 3)[0]]
    [0.7311, 0.2689]
    """
    gate_BTF = jax.nn.silu(jnp.einsum("...TD,DF->...TF", x, w_gate))
    hidden_BTF = gate_BTF * jnp.einsum("...TD,DF->...TF", x, w1)
    return jnp.einsum("...TF,FD->...TD", hidden_BTF, w2)


class FeedForward(nnx.Module):
    """:func:`feed_forward` with learned ``W_1, b_1, W_2, b_2`` (two ``nnx.Linear`` layers).

    Args:
      d_model: D, width of input and output.
      d_ff: F, inner width.
      activation: a name of :data:`ACTIVATIONS` ("relu", the paper's; "gelu_tanh", GPT-2's).
      use_bias: learn ``b_1`` and ``b_2``.
      dtype, preferred_element_type: the products' input and accumulation dtypes, as
        ``nnx.Linear`` (mixed precision: bfloat16 and float32, see
        :mod:`attention.model.precision`).
      param_dtype: storage dtype of the weights.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    >>> ffn = FeedForward(8, 32, rngs=nnx.Rngs(0))
    >>> ffn(jnp.ones((2, 3, 8))).shape
    (2, 3, 8)
    """

    def __init__(
        self, d_model: int, d_ff: int, *, activation: str = "relu", use_bias: bool = True,
        dtype=None, param_dtype=jnp.float32, preferred_element_type=None,
        kernel_init=nnx.initializers.xavier_uniform(), rngs: nnx.Rngs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}.")
        self.activation = activation
        linear = dict(dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
                      preferred_element_type=preferred_element_type, use_bias=use_bias, rngs=rngs)
        self.linear1 = nnx.Linear(d_model, d_ff, **linear)  # W_1, b_1
        self.linear2 = nnx.Linear(d_ff, d_model, **linear)  # W_2, b_2

    def __call__(self, x: Float[Array, "*B T D"]) -> Float[Array, "*B T D"]:
        return self.linear2(ACTIVATIONS[self.activation](self.linear1(x)))


class SwiGLUFeedForward(nnx.Module):
    """:func:`swiglu_feed_forward` with learned ``W_g, W_1, W_2`` (three ``nnx.Linear``
    layers, no biases: Llama's ``gate_proj``, ``up_proj``, ``down_proj``). Arguments as
    :class:`FeedForward`.

    >>> ffn = SwiGLUFeedForward(8, 12, rngs=nnx.Rngs(0))
    >>> ffn(jnp.ones((2, 3, 8))).shape
    (2, 3, 8)
    """

    def __init__(
        self, d_model: int, d_ff: int, *, dtype=None, param_dtype=jnp.float32,
        preferred_element_type=None, kernel_init=nnx.initializers.xavier_uniform(),
        rngs: nnx.Rngs,
    ):
        linear = dict(dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
                      preferred_element_type=preferred_element_type, use_bias=False, rngs=rngs)
        self.gate = nnx.Linear(d_model, d_ff, **linear)     # W_g
        self.linear1 = nnx.Linear(d_model, d_ff, **linear)  # W_1 ("up")
        self.linear2 = nnx.Linear(d_ff, d_model, **linear)  # W_2 ("down")

    def __call__(self, x: Float[Array, "*B T D"]) -> Float[Array, "*B T D"]:
        return self.linear2(jax.nn.silu(self.gate(x)) * self.linear1(x))
