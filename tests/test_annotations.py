"""The annotation hook is on, and it holds the public functions to their shape annotations.

The whole package runs under jaxtyping's import hook with beartype during the tests
(``--jaxtyping-packages`` in ``pyproject.toml``; users' code runs without it, so their hot paths
stay unchecked). Every test of the suite and every doctest therefore checks the annotations of
what it calls. The cases here make sure the hook is really there: a valid call passes, and a
call whose dimensions disagree with the annotation is stopped by the hook, before the
package's own checks run.
"""

import inspect
import pkgutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jaxtyping import TypeCheckError

import attention

B, T, S, N, H, HV = 2, 3, 5, 7, 11, 13


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


Q, K, V = normal(0, (B, T, N, H)), normal(1, (B, S, N, H)), normal(2, (B, S, N, HV))
MASK = jnp.ones((B, 1, T, S), bool)

# (function, valid arguments, arguments whose dims contradict the annotation)
CASES = {
    "dot_product_scores": (attention.dot_product_scores, (Q, K), (Q, K[..., :4])),
    "dot_product_scores_unbatched": (
        attention.dot_product_scores,
        (Q[0], K[0]),
        (Q[0], K[0, :, :, :4]),
    ),
    "masked_softmax": (
        attention.masked_softmax,
        (normal(3, (B, N, T, S)), jnp.ones((T, S), bool)),
        (normal(3, (B, N, T, S)), jnp.ones((T, 4), bool)),
    ),
    "attention_weights": (attention.attention_weights, (Q, K, MASK), (Q, K[:1])),
    "weighted_sum": (
        attention.mechanism.weighted_sum,
        (normal(4, (B, N, T, S)), V),
        (normal(4, (B, N, T, S)), V[:, :4]),
    ),
    "single_head_attention": (
        attention.single_head_attention,
        (Q[0, :, 0], K[0, :, 0], V[0, :, 0], jnp.ones((T, S), bool)),
        (Q[0, :, 0], K[0, :, 0], V[0, :4, 0]),
    ),
    "dot_product_attention": (
        attention.dot_product_attention,
        (Q, K, V, None, MASK),
        (Q, K, V[:, :, :3]),
    ),
    "padding_mask": (
        attention.padding_mask,
        (jnp.array([2, 5], jnp.int32), S),
        (jnp.array([[2], [5]], jnp.int32), S),  # lengths must be [B]
    ),
    "combine_masks": (attention.combine_masks, (MASK, None), (MASK, jnp.zeros((T, S)))),
    "split_heads": (attention.split_heads, (normal(5, (B, T, N * H)), N), (normal(5, (N * H,)), N)),
    "merge_heads": (attention.merge_heads, (Q,), (Q[0, 0],)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_annotations_accept_valid_calls_and_reject_inconsistent_dims(name):
    fn, good, bad = CASES[name]
    fn(*good)
    with pytest.raises(TypeCheckError):
        fn(*bad)


def test_causal_mask_and_default_scale_annotations():
    assert attention.causal_mask(T, S).shape == (T, S)
    assert attention.default_scale(H) == pytest.approx(H**-0.5)
    with pytest.raises(TypeCheckError):
        attention.causal_mask(T, S, offset=jnp.zeros((2,), jnp.int32))  # not a scalar


def test_multi_head_call_annotation():
    mha = attention.MultiHeadAttention(N, 11, N * 4, in_kv_features=13, rngs=nnx.Rngs(0))
    mha(normal(6, (B, T, 11)), normal(7, (B, S, 13)))
    with pytest.raises(TypeCheckError):
        mha(normal(6, (B, T, 11)), normal(7, (1, S, 13)))  # batch sizes differ


def test_every_module_of_the_package_is_under_the_hook():
    # jaxtyping wraps each function it instruments; a module imported before the hook was
    # installed (or left out of --jaxtyping-packages) would show plain functions.
    unchecked = []
    for info in pkgutil.walk_packages(attention.__path__, "attention."):
        if info.name.endswith("__main__"):
            continue
        module = __import__(info.name, fromlist=["_"])
        for name, fn in vars(module).items():
            if (inspect.isfunction(fn) and fn.__module__ == info.name
                    and not name.startswith("_") and fn.__annotations__):
                if not hasattr(fn, "__wrapped__"):
                    unchecked.append(f"{info.name}.{name}")
    assert not unchecked, f"not under the annotation hook: {unchecked}"
