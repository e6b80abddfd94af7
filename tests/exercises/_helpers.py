"""What the checker tests share: the failure assertion, and a student's multi-head attention
with one chosen mistake (exercises 06 and 08)."""

import math

import jax.numpy as jnp

from teachers import solutions


def fails(result, *fragments, status="failed"):
    """The result failed, with this status, and its message contains every fragment."""
    assert not result.passed, result
    assert result.status == status, result
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in {result.message!r}"


def mha_variant(*, strided=False, scale_by=None, project=True):
    def multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
        B, T, D = x.shape
        H = D // num_heads

        def heads(y):
            if strided:
                return y.reshape(B, T, H, num_heads).swapaxes(-1, -2)
            return y.reshape(B, T, num_heads, H)

        q, k, v = heads(x @ w_q), heads(x @ w_k), heads(x @ w_v)
        s = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(scale_by or H)
        w = solutions.masked_softmax(s, True if mask is None else mask)
        out = jnp.einsum("bnts,bsnh->btnh", w, v)
        out = (out.swapaxes(-1, -2) if strided else out).reshape(B, T, D)
        return out @ w_o if project else out

    return multi_head_attention
