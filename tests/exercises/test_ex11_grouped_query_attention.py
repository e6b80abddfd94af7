"""Exercise 11's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex11_grouped_query_attention.py)."""


import jax
import jax.numpy as jnp

from attention import exercises

from ._helpers import fails


def _gqa(*, order="repeat", scale=True, layout="btnh", causal="s <= t"):
    """A student's grouped-query attention with one chosen mistake."""

    def grouped_query_attention(query, key, value, is_causal=False):
        N, H = query.shape[-2], query.shape[-1]
        T, S, K = query.shape[-3], key.shape[-3], key.shape[-2]
        if order == "repeat":
            key, value = jnp.repeat(key, N // K, axis=-2), jnp.repeat(value, N // K, axis=-2)
        else:  # head n reads key head n % K
            key, value = jnp.tile(key, (1, 1, N // K, 1)), jnp.tile(value, (1, 1, N // K, 1))
        scores = jnp.einsum("btnh,bsnh->bnts", query, key)
        if scale:
            scores = scores / jnp.sqrt(H)
        if is_causal:
            t, s = jnp.arange(T)[:, None], jnp.arange(S)[None, :]
            allowed = {"s <= t": s <= t, "s < t": s < t, "none": s >= 0}[causal]
            scores = jnp.where(allowed, scores, -1e9)
        out = jnp.einsum("bnts,bsnh->bnth", jax.nn.softmax(scores, axis=-1), value)
        return out if layout == "bnth" else out.swapaxes(1, 2)

    return grouped_query_attention


def test_grouped_query_attention_mistakes():
    check = exercises.check_grouped_query_attention
    fails(check(_gqa(order="tile")), "repeated in the wrong order", "n // (N/K)",
           "jnp.repeat(key, N // K, axis=2)")
    fails(check(_gqa(scale=False)), "without the 1/sqrt(d_k) scaling", "sqrt(16) = 4.00")
    fails(check(_gqa(layout="bnth")), "shape [2, 6, 3, 16] = [B, N, T, H]",
           "[B, T, N, H] = [2, 3, 6, 16]")
    fails(check(_gqa(causal="none")), "you ignored is_causal")
    fails(check(_gqa(causal="s < t")), "hides the diagonal")
