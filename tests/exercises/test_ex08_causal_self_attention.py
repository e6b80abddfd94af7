"""Exercise 08's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex08_causal_self_attention.py)."""


import jax.numpy as jnp

from attention import exercises

from ._helpers import fails, mha_variant


def _causal(allowed):
    def causal_self_attention(x, w_q, w_k, w_v, w_o, num_heads):
        T = x.shape[1]
        mask = allowed(jnp.arange(T)[:, None], jnp.arange(T)[None, :])
        return mha_variant()(x, w_q, w_k, w_v, w_o, num_heads, mask=mask)

    return causal_self_attention


def test_causal_self_attention_mistakes():
    check = exercises.check_causal_self_attention
    fails(check(_causal(lambda t, s: s > t)), "wrong polarity")
    fails(check(_causal(lambda t, s: s < t)), "hides the diagonal")
    fails(check(_causal(lambda t, s: s <= t + 1)), "future tokens leak",
           "output position t=0 changes when the input x at position s=1")
    fails(check(_causal(lambda t, s: s >= 0)), "future tokens leak")
