"""Token embeddings scaled by sqrt(d_model) and the tied output projection (section 3.4)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attention.model.embeddings import TokenEmbedding, embed_tokens, tied_logits


def test_lookup_is_scaled_by_sqrt_d_model():
    emb = TokenEmbedding(11, 6, rngs=nnx.Rngs(0))
    tokens = jnp.array([[3, 0, 10], [7, 7, 1]])
    table = np.asarray(emb.embedding[...])
    expected = np.stack([[table[i] * math.sqrt(6) for i in row] for row in tokens.tolist()])
    np.testing.assert_allclose(emb(tokens), expected, rtol=1e-6)
    np.testing.assert_allclose(embed_tokens(emb.embedding[...], tokens), expected, rtol=1e-6)


def test_initial_scaled_embeddings_have_unit_variance():
    emb = TokenEmbedding(4000, 64, rngs=nnx.Rngs(1))
    assert abs(float(jnp.std(emb(jnp.arange(4000)[None]))) - 1.0) < 0.05


def test_attend_is_the_transposed_matrix():
    emb = TokenEmbedding(7, 5, rngs=nnx.Rngs(0))
    hidden = jax.random.normal(jax.random.key(2), (3, 4, 5))
    expected = np.einsum("btd,vd->btv", np.asarray(hidden), np.asarray(emb.embedding[...]))
    np.testing.assert_allclose(emb.attend(hidden), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tied_logits(hidden, emb.embedding[...]), expected, rtol=1e-5,
                               atol=1e-6)
    assert emb.attend(hidden[:, 0]).shape == (3, 7)


def test_gradient_reaches_only_the_used_rows_and_both_uses():
    emb = TokenEmbedding(6, 4, rngs=nnx.Rngs(0))

    def lookup_loss(module):
        return module(jnp.array([[2, 2, 5]])).sum()

    grad = np.asarray(nnx.grad(lookup_loss)(emb).embedding[...])
    assert np.all(grad[[0, 1, 3, 4]] == 0)
    np.testing.assert_allclose(grad[2], 2 * math.sqrt(4))
    np.testing.assert_allclose(grad[5], math.sqrt(4))

    def projection_loss(module):
        return module.attend(jnp.ones((1, 4))).sum()

    # Every row takes part in the projection: d/dE sum(h E^T) = 1 for h = 1.
    np.testing.assert_allclose(nnx.grad(projection_loss)(emb).embedding[...], np.ones((6, 4)))


def test_computation_dtype():
    emb = TokenEmbedding(6, 4, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert emb.embedding[...].dtype == jnp.float32
    assert emb(jnp.array([[1]])).dtype == jnp.bfloat16


def test_annotations_match_the_shapes():
    from beartype import beartype
    from jaxtyping import TypeCheckError, jaxtyped

    table = jnp.ones((7, 5))
    embed = jaxtyped(typechecker=beartype)(embed_tokens)
    logits = jaxtyped(typechecker=beartype)(tied_logits)
    assert embed(table, jnp.array([[1, 2]])).shape == (1, 2, 5)
    assert logits(jnp.ones((2, 3, 5)), table).shape == (2, 3, 7)
    with pytest.raises(TypeCheckError):
        logits(jnp.ones((2, 3, 4)), table)  # D disagrees
    with pytest.raises(TypeCheckError):
        embed(table, jnp.array([[1.0]]))  # float token ids


def test_without_the_sqrt_d_model_scale():
    emb = TokenEmbedding(11, 6, scale=False, rngs=nnx.Rngs(0))
    tokens = jnp.array([[3, 0, 10]])
    np.testing.assert_array_equal(emb(tokens), np.asarray(emb.embedding[...])[[3, 0, 10]][None])
