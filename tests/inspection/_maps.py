"""Random attention weights and maps for the inspection tests (rows sum to one)."""

import numpy as np


def random_weights(shape, seed=0):
    """Rows drawn from a flat Dirichlet: positive, summing to one over the last axis."""
    return (
        np.random.default_rng(seed)
        .dirichlet(np.ones(shape[-1]), size=shape[:-1])
        .astype(np.float32)
    )


def random_maps(sizes, seed=0):
    """A dict as ``attention_maps`` returns it, for sizes ``(L, B, N, T, S)``."""
    L, B, N, T, S = sizes
    return {
        "encoder_self": random_weights((L, B, N, S, S), seed),
        "decoder_self": random_weights((L, B, N, T, T), seed + 1),
        "decoder_cross": random_weights((L, B, N, T, S), seed + 2),
    }
