"""Random query, key and value arrays shared by the kernel tests."""

import jax
import jax.numpy as jnp


def random_qkv(B, T, S, N, H, Hv, *, seed=0, dtype=jnp.float32):
    """query [B, T, N, H], key [B, S, N, H], value [B, S, N, Hv] from standard normals."""
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.normal(kq, (B, T, N, H), dtype),
        jax.random.normal(kk, (B, S, N, H), dtype),
        jax.random.normal(kv, (B, S, N, Hv), dtype),
    )
