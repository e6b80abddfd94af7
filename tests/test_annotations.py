"""The jaxtyping annotations of the public functions tell the truth, and so do the doctests.

Each function is wrapped in ``jaxtyped(typechecker=beartype)`` here, in the test, not in the
package (users' hot paths stay unchecked): a valid call must pass the check, and a call whose
dimensions disagree with the annotation must be stopped by it, before our own checks run.
"""

import doctest
import importlib

import jax.numpy as jnp
import numpy as np
import pytest
from beartype import beartype
from flax import nnx
from jaxtyping import TypeCheckError, jaxtyped

import attention

B, T, S, N, H, HV = 2, 3, 5, 7, 11, 13


def checked(fn):
    return jaxtyped(typechecker=beartype)(fn)


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
        (Q[0], K[0, :, :3]),
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
    fn = checked(fn)
    fn(*good)
    with pytest.raises(TypeCheckError):
        fn(*bad)


def test_causal_mask_and_default_scale_annotations():
    assert checked(attention.causal_mask)(T, S).shape == (T, S)
    assert checked(attention.default_scale)(H) == pytest.approx(H**-0.5)


def test_multi_head_call_annotation():
    mha = attention.MultiHeadAttention(N, 11, N * 4, in_kv_features=13, rngs=nnx.Rngs(0))
    call = checked(type(mha).__call__)
    call(mha, normal(6, (B, T, 11)), normal(7, (B, S, 13)))
    with pytest.raises(TypeCheckError):
        call(mha, normal(6, (B, T, 11)), normal(7, (1, S, 13)))  # batch sizes differ


FOUNDATION = [
    "attention._checks",
    "attention.mechanism.scores",
    "attention.mechanism.masks",
    "attention.mechanism.softmax",
    "attention.mechanism.weights",
    "attention.mechanism.weighted_sum",
    "attention.mechanism.scaled_dot_product",
    "attention.mechanism.multi_head",
]


@pytest.mark.parametrize("module_name", FOUNDATION)
def test_docstring_examples_hold(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
    if module_name != "attention._checks":
        assert result.attempted > 0, f"{module_name} has no doctest"
