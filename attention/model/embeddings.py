"""Step 9: token embeddings, and the tied output projection that shares them (Vaswani et al. 3.4).

A token id becomes a learned vector, row ``E[id]`` of an embedding matrix ``E [V, D]``. The
paper multiplies the embeddings by ``sqrt(d_model)`` so that they are not drowned by the
positional encodings (whose entries have size about 1) when the two are added::

    x = E[tokens] * sqrt(d_model) + PE                   # [B, T, D]

and it uses the same matrix, transposed, as the "pre-softmax linear transformation" that
turns the decoder's last hidden state into next-token scores::

    logits = h E^T                                       # [B, T, V]

(Press & Wolf 2017, "weight tying"). With a shared source/target vocabulary the encoder
embedding is the same matrix too, so one ``[V, D]`` array serves three purposes.

We initialise ``E`` from N(0, 1/d_model): after the sqrt(d_model) scaling each embedding
entry has variance about 1, like the positional encodings, and the tied logits ``h E^T`` start
with variance about 1 for a unit-variance ``h``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int


def embed_tokens(
    embedding: Float[Array, "V D"], tokens: Int[Array, "*B T"]
) -> Float[Array, "*B T D"]:
    """Look up rows of ``embedding`` and scale them by ``sqrt(D)`` (section 3.4).

    Out-of-range ids are not checked here (the model checks its inputs); ``jnp.take`` gives NaN
    rows for them.

    >>> E = jnp.eye(4)
    >>> embed_tokens(E, jnp.array([2])).tolist()
    [[0.0, 0.0, 2.0, 0.0]]
    """
    scale = math.sqrt(embedding.shape[-1])
    return jnp.take(embedding, tokens, axis=0) * jnp.asarray(scale, embedding.dtype)


def tied_logits(
    hidden: Float[Array, "*B D"], embedding: Float[Array, "V D"]
) -> Float[Array, "*B V"]:
    """Next-token scores with the embedding matrix as the output projection: ``h E^T``.

    >>> tied_logits(jnp.ones((1, 2)), jnp.eye(2)).tolist()
    [[1.0, 1.0]]
    """
    return jnp.einsum("...D,VD->...V", hidden, embedding)


class TokenEmbedding(nnx.Module):
    """A ``[V, D]`` embedding matrix: ``__call__`` embeds (scaled), ``attend`` projects back.

    Args:
      vocab_size: V.
      d_model: D.
      scale: multiply by ``sqrt(D)`` when embedding (the paper); GPT-2 and Llama do not.
      dtype: computation dtype (None: that of the parameters).
      param_dtype: storage dtype of ``embedding``.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    >>> emb = TokenEmbedding(11, 8, rngs=nnx.Rngs(0))
    >>> x = emb(jnp.array([[1, 2, 3]]))
    >>> x.shape, emb.attend(x).shape
    ((1, 3, 8), (1, 3, 11))
    """

    def __init__(
        self, vocab_size: int, d_model: int, *, scale: bool = True, dtype=None,
        param_dtype=jnp.float32, rngs: nnx.Rngs,
    ):
        self.scale = scale
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.dtype = dtype
        init = nnx.initializers.normal(stddev=d_model**-0.5)
        self.embedding = nnx.Param(init(rngs.params(), (vocab_size, d_model), param_dtype))

    def _table(self):
        table_VD = self.embedding[...]
        return table_VD if self.dtype is None else table_VD.astype(self.dtype)

    def __call__(self, tokens: Int[Array, "*B T"]) -> Float[Array, "*B T D"]:
        if not self.scale:
            return jnp.take(self._table(), tokens, axis=0)
        return embed_tokens(self._table(), tokens)

    def attend(self, hidden: Float[Array, "*B D"]) -> Float[Array, "*B V"]:
        """Logits ``hidden E^T`` (the tied pre-softmax projection)."""
        return tied_logits(hidden, self._table())
