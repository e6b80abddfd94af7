"""Random query, key and value arrays shared by the kernel tests."""

import jax
import jax.numpy as jnp
import numpy as np


def random_qkv(B, T, S, N, H, Hv, *, seed=0, dtype=jnp.float32):
    """query [B, T, N, H], key [B, S, N, H], value [B, S, N, Hv] from standard normals."""
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.normal(kq, (B, T, N, H), dtype),
        jax.random.normal(kk, (B, S, N, H), dtype),
        jax.random.normal(kv, (B, S, N, Hv), dtype),
    )


def grouped_qkv(B, T, S, N, K, H, *, seed=0):
    """query [B, T, N, H], key and value [B, S, K, H] (K key/value heads: grouped-query).

    The value head dim equals H: ``jax.nn.dot_product_attention``, the parity target, asks
    for it.
    """
    kq, kk, kv = jax.random.split(jax.random.key(seed), 3)
    return (
        jax.random.normal(kq, (B, T, N, H)),
        jax.random.normal(kk, (B, S, K, H)),
        jax.random.normal(kv, (B, S, K, H)),
    )


def allowed_numpy(B, T, S, *, is_causal=False, local_window_size=None,
                  query_seq_lengths=None, key_value_seq_lengths=None, mask=None):
    """Which (b, ., t, s) may attend, written out in NumPy from the definitions (independent of
    the package's masks): ``[B, 1 or N, T, S]``."""
    t = np.arange(T)[:, None]
    s = np.arange(S)[None, :]
    ok = np.ones((B, 1, T, S), bool)
    if is_causal:
        ok &= s <= t
    if local_window_size is not None:
        w = local_window_size
        left, right = (w, w) if isinstance(w, int) else w
        ok &= (t - left <= s) & (s <= t + right)
    if query_seq_lengths is not None:
        ok &= t[None, None] < np.asarray(query_seq_lengths)[:, None, None, None]
    if key_value_seq_lengths is not None:
        ok &= s[None, None] < np.asarray(key_value_seq_lengths)[:, None, None, None]
    if mask is not None:
        ok = ok & np.asarray(mask)
    return ok


def check_parity_with_jax_nn(f, q, k, v, *, atol, atol_grad, **kwargs):
    """``f`` equals ``jax.nn.dot_product_attention`` in outputs and in gradients w.r.t. q, k, v
    (of a weighted sum of the outputs), jitted.

    Rows of real queries whose keys are all masked are compared with zeros (this package's
    convention; ``jax.nn`` gives the mean of the values there) and carry no weight in the sum.
    ``kwargs`` are the common arguments; ``key_lengths=`` / ``query_lengths=`` (the kernels'
    old names) are given to ``jax.nn`` under its own names.
    """
    B, T, N, _ = q.shape
    S = k.shape[1]
    nn_kwargs = dict(kwargs)
    for old, new in (("key_lengths", "key_value_seq_lengths"),
                     ("query_lengths", "query_seq_lengths")):
        if old in nn_kwargs:
            nn_kwargs[new] = nn_kwargs.pop(old)
    ok = allowed_numpy(B, T, S, **nn_kwargs)
    ql = nn_kwargs.get("query_seq_lengths")
    real_BT = np.arange(T)[None, :] < (T if ql is None else np.asarray(ql)[:, None])
    empty_BTN = np.broadcast_to(
        np.moveaxis(~ok.any(-1), 1, 2), (B, T, N)) & real_BT[:, :, None]
    keep_BTN1 = jnp.asarray(~empty_BTN)[..., None]

    got = jax.jit(lambda q, k, v: f(q, k, v, **kwargs))(q, k, v)
    want = jax.nn.dot_product_attention(q, k, v, **nn_kwargs)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert bool(jnp.all(jnp.where(keep_BTN1, 0.0, got) == 0)), "fully masked rows must be 0"
    assert bool(jnp.all(jnp.where(real_BT[:, :, None, None], 0.0, got) == 0)), "padding queries"
    assert jnp.allclose(jnp.where(keep_BTN1, got, 0), jnp.where(keep_BTN1, want, 0), atol=atol)

    weights = jax.random.normal(jax.random.key(99), got.shape) * keep_BTN1

    def grads(g, jit):
        loss = lambda q, k, v: jnp.sum(weights * g(q, k, v))
        grad = jax.grad(loss, argnums=(0, 1, 2))
        return (jax.jit(grad) if jit else grad)(q, k, v)

    ours = grads(lambda q, k, v: f(q, k, v, **kwargs), True)
    theirs = grads(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, **nn_kwargs), False)
    for name, a, b in zip("qkv", ours, theirs, strict=True):
        assert a.shape == b.shape
        assert jnp.allclose(a, b, atol=atol_grad), (name, float(jnp.abs(a - b).max()))


# The cases every rung is held to, on query length T = 7 and key length S = 9 (distinct, so
# causal and windows are off the square): no mask, causal, windows (int and (left, right),
# with and without causal), sequence lengths (new names and old), and combinations. Chosen
# so that some real queries see no key (compared with zeros) in a few of them.
VARIANT_CASES = {
    "plain": {},
    "causal": {"is_causal": True},
    "window_int": {"local_window_size": 2},
    "window_pair_causal": {"local_window_size": (3, 1), "is_causal": True},
    "lengths": {"query_seq_lengths": jnp.array([7, 4]),
                "key_value_seq_lengths": jnp.array([3, 9])},
    "old_names_causal": {"key_lengths": jnp.array([9, 5]), "query_lengths": jnp.array([6, 7]),
                         "is_causal": True},
    "window_lengths_causal": {"local_window_size": (2, 0), "is_causal": True,
                              "query_seq_lengths": jnp.array([5, 7]),
                              "key_value_seq_lengths": jnp.array([9, 4])},
    "window_right_lengths": {"local_window_size": (0, 3),
                             "key_value_seq_lengths": jnp.array([6, 9])},
}

# (case, K) pairs every rung is run on, N = 6 query heads: each K (6 = N, 3 = N/2, 1) meets
# windows with and without causal and lengths; together they cover every case (the whole
# cross product would cost the suite three times as long for little more).
VARIANT_PARAMS = [
    ("plain", 6), ("causal", 3), ("window_int", 1), ("window_int", 3),
    ("window_pair_causal", 6), ("window_pair_causal", 1), ("lengths", 3),
    ("old_names_causal", 1), ("window_lengths_causal", 3), ("window_lengths_causal", 6),
    ("window_right_lengths", 1),
]
