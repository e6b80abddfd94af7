"""Model solutions of the exercises, for teachers: kept out of the notebooks and out of the
installed package (a student's ``pip install`` has no answers in it; the grader's workers cannot
read this folder). Give students the notebooks, not this folder.

Each function has the name and signature of the blank it fills in its notebook, and is written
the way a student could write it from the notebook alone: plain ``jax.numpy``, no helpers from
the package. :func:`solution_source` gives the source of one exercise's solution cell; the
tests paste it into the notebook's ``exercise`` cell and run the notebook.
"""

from __future__ import annotations

import inspect
import textwrap

import jax
import jax.numpy as jnp

# ----------------------------------------------------------------- 00 combining embeddings


def combine_embeddings(u, v):
    """The sum, the difference and the element-wise product of u and v, each [B, D]."""
    return u + v, u - v, u * v


INTERACTION_ANSWER = "c"  # (c) the element-wise product u * v


# ----------------------------------------------------------------- 01 dot-product scores


def dot_product_scores(query, key):
    """query [B, T, N, H], key [B, S, N, H] -> scores [B, N, T, S], scaled by 1/sqrt(H)."""
    H = query.shape[-1]
    scores_BNTS = jnp.einsum("...tnh,...snh->...nts", query, key)
    return scores_BNTS / jnp.sqrt(H)


# ----------------------------------------------------------------- 02 stable softmax


def stable_softmax(scores):
    """Softmax over the last axis, without overflow: subtract each row's maximum first."""
    shifted = scores - jnp.max(scores, axis=-1, keepdims=True)
    exp = jnp.exp(shifted)
    return exp / jnp.sum(exp, axis=-1, keepdims=True)


# ----------------------------------------------------------------- 03 masking


def causal_mask(T, S):
    """Boolean [T, S]: query t may attend key s when s <= t."""
    return jnp.arange(S)[None, :] <= jnp.arange(T)[:, None]


def padding_mask(lengths, max_len):
    """Boolean [B, 1, 1, S]: key s of sequence b is real when s < lengths[b]."""
    real_BS = jnp.arange(max_len)[None, :] < lengths[:, None]
    return real_BS[:, None, None, :]


def masked_softmax(scores, mask):
    """Softmax over the last axis giving masked entries (mask False) weight 0.

    A row with no allowed entry gets all zeros.
    """
    mask = jnp.broadcast_to(mask, scores.shape)
    lowest = jnp.finfo(scores.dtype).min
    row_max = jnp.max(jnp.where(mask, scores, lowest), axis=-1, keepdims=True)
    exp = jnp.where(mask, jnp.exp(jnp.where(mask, scores - row_max, 0.0)), 0.0)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    return exp / jnp.where(total > 0, total, 1.0)


# ----------------------------------------------------------------- 04 scaled dot-product attention


def scaled_dot_product_attention(query, key, value, mask=None):
    """softmax(Q K^T / sqrt(d_k), masked) V for [B, T, N, H] inputs -> [B, T, N, H]."""
    H = query.shape[-1]
    scores_BNTS = jnp.einsum("btnh,bsnh->bnts", query, key) / jnp.sqrt(H)
    if mask is None:
        mask = jnp.ones(scores_BNTS.shape, bool)
    mask = jnp.broadcast_to(mask, scores_BNTS.shape)
    lowest = jnp.finfo(scores_BNTS.dtype).min
    row_max = jnp.max(jnp.where(mask, scores_BNTS, lowest), axis=-1, keepdims=True)
    exp = jnp.where(mask, jnp.exp(jnp.where(mask, scores_BNTS - row_max, 0.0)), 0.0)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    weights_BNTS = exp / jnp.where(total > 0, total, 1.0)
    return jnp.einsum("bnts,bsnh->btnh", weights_BNTS, value)


# ----------------------------------------------------------------- 05 splitting and merging heads


def split_heads(x, num_heads):
    """[B, T, D] -> [B, T, N, H]: head n holds features n*H .. (n+1)*H - 1."""
    *batch, D = x.shape
    return x.reshape(*batch, num_heads, D // num_heads)


def merge_heads(x):
    """[B, T, N, H] -> [B, T, N*H], the inverse of split_heads."""
    *batch, N, H = x.shape
    return x.reshape(*batch, N * H)


# ----------------------------------------------------------------- 06 multi-head attention


def multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
    """Self-attention with h heads: project, split, attend, merge, project. x [B, T, D]."""
    B, T, D = x.shape
    H = D // num_heads
    q = (x @ w_q).reshape(B, T, num_heads, H)
    k = (x @ w_k).reshape(B, T, num_heads, H)
    v = (x @ w_v).reshape(B, T, num_heads, H)
    scores_BNTS = jnp.einsum("btnh,bsnh->bnts", q, k) / jnp.sqrt(H)
    if mask is not None:
        scores_BNTS = jnp.where(mask, scores_BNTS, -1e9)
    weights_BNTS = jax.nn.softmax(scores_BNTS, axis=-1)
    if mask is not None:  # a query with no allowed key contributes nothing
        weights_BNTS = jnp.where(mask, weights_BNTS, 0.0)
    heads_BTNH = jnp.einsum("bnts,bsnh->btnh", weights_BNTS, v)
    return heads_BTNH.reshape(B, T, D) @ w_o


# ----------------------------------------------------------------- 07 sinusoidal positions


def sinusoidal_positions(max_len, d_model):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(same angle); [L, D]."""
    pos = jnp.arange(max_len, dtype=jnp.float32)[:, None]
    two_i = (jnp.arange(d_model) // 2 * 2).astype(jnp.float32)
    angle = pos / 10000.0 ** (two_i / d_model)
    return jnp.where(jnp.arange(d_model) % 2 == 0, jnp.sin(angle), jnp.cos(angle))


# ----------------------------------------------------------------- 08 causal self-attention


def causal_self_attention(x, w_q, w_k, w_v, w_o, num_heads):
    """The decoder's masked self-attention: position t attends positions s <= t only."""
    B, T, D = x.shape
    H = D // num_heads
    q = (x @ w_q).reshape(B, T, num_heads, H)
    k = (x @ w_k).reshape(B, T, num_heads, H)
    v = (x @ w_v).reshape(B, T, num_heads, H)
    scores_BNTS = jnp.einsum("btnh,bsnh->bnts", q, k) / jnp.sqrt(H)
    allowed_TS = jnp.arange(T)[None, :] <= jnp.arange(T)[:, None]
    scores_BNTS = jnp.where(allowed_TS, scores_BNTS, -1e9)
    weights_BNTS = jax.nn.softmax(scores_BNTS, axis=-1)
    heads_BTNH = jnp.einsum("bnts,bsnh->btnh", weights_BNTS, v)
    return heads_BTNH.reshape(B, T, D) @ w_o


# ----------------------------------------------------------------- 09 greedy decoding


def greedy_decode(model, src_tokens, max_len):
    """The most probable token at each step, until eos; tokens [B, max_len] after bos."""
    config = model.config
    B = src_tokens.shape[0]
    memory = model.encode(src_tokens, deterministic=True)
    # A fixed-size buffer of decoder inputs: bos, then the tokens chosen so far, then pad.
    # Its shape never changes, so JAX compiles the decoder once; the causal mask makes the
    # positions after t irrelevant to the prediction at t.
    inputs = jnp.full((B, max_len), config.pad_id, jnp.int32).at[:, 0].set(config.bos_id)
    finished = jnp.zeros(B, bool)
    tokens = []
    for t in range(max_len):
        logits = model.decode(inputs, memory, src_tokens, deterministic=True)[:, t]  # [B, V]
        logits = logits.at[:, config.pad_id].set(-1e9).at[:, config.bos_id].set(-1e9)
        next_token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        next_token = jnp.where(finished, config.pad_id, next_token)
        tokens.append(next_token)
        finished = finished | (next_token == config.eos_id)
        if t + 1 < max_len:
            inputs = inputs.at[:, t + 1].set(next_token)
    return jnp.stack(tokens, axis=1)


# ----------------------------------------------------------------- 10 label smoothing


def label_smoothed_loss(logits, targets, label_smoothing=0.1, pad_id=0):
    """Mean over real (non-pad) targets of the cross-entropy with q = (1-eps) onehot + eps/V."""
    V = logits.shape[-1]
    log_p = jax.nn.log_softmax(logits, axis=-1)
    q = (1 - label_smoothing) * jax.nn.one_hot(targets, V) + label_smoothing / V
    loss_BT = -jnp.sum(q * log_p, axis=-1)
    real_BT = targets != pad_id
    return jnp.sum(jnp.where(real_BT, loss_BT, 0.0)) / jnp.sum(real_BT)


# ----------------------------------------------------------------- 11 grouped-query attention


def grouped_query_attention(query, key, value, is_causal=False):
    """query [B, T, N, H], key/value [B, S, K, H] -> [B, T, N, H]; head n reads n // (N/K)."""
    B, T, N, H = query.shape
    S, K = key.shape[-3], key.shape[-2]
    # Group the query heads: [B, T, K, G, H], query head n = k * G + g belongs to group k.
    q_BTKGH = query.reshape(B, T, K, N // K, H)
    scores_BKGTS = jnp.einsum("btkgh,bskh->bkgts", q_BTKGH, key) / jnp.sqrt(H)
    if is_causal:
        allowed_TS = jnp.arange(S)[None, :] <= jnp.arange(T)[:, None]
        scores_BKGTS = jnp.where(allowed_TS, scores_BKGTS, -1e9)
    weights_BKGTS = jax.nn.softmax(scores_BKGTS, axis=-1)
    out_BTKGH = jnp.einsum("bkgts,bskh->btkgh", weights_BKGTS, value)
    return out_BTKGH.reshape(B, T, N, H)


# ----------------------------------------------------------------- 12 rotary positions


def apply_rope(x, positions, base=10000.0):
    """Rotate each pair (x_2i, x_2i+1) of x [..., T, N, H] by positions[t] * base^(-2i/H)."""
    H = x.shape[-1]
    theta = base ** (-jnp.arange(0, H, 2) / H)  # [H/2]: theta_i = base^(-2i/H)
    angle_TP = positions[:, None].astype(jnp.float32) * theta[None, :]
    cos, sin = jnp.cos(angle_TP)[:, None, :], jnp.sin(angle_TP)[:, None, :]  # [T, 1, H/2]
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape)


def rope_attention(query, key, value, positions):
    """Attention of RoPE-rotated queries and keys (the values are not rotated)."""
    return jax.nn.dot_product_attention(
        apply_rope(query, positions), apply_rope(key, positions), value
    )


# ----------------------------------------------------------------- 13 sliding-window mask


def sliding_window_mask(T, window):
    """Boolean [T, T]: token t sees itself and the `window` tokens before it."""
    t, s = jnp.arange(T)[:, None], jnp.arange(T)[None, :]
    return (s <= t) & (t - s <= window)


# ----------------------------------------------------------------- 14 layer norm


def layer_norm(x, scale, bias, epsilon=1e-6):
    """scale * (x - mean) / sqrt(var + epsilon) + bias over the last axis (biased variance)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return scale * (x - mean) / jnp.sqrt(var + epsilon) + bias


# ----------------------------------------------------------------- 15 encoder layer


def encoder_layer(x, src_mask, layer, norm_first=False, deterministic=True):
    """Self-attention then feed-forward, each x + dropout(sublayer), post-LN or pre-LN."""
    blocks = [(lambda h: layer.self_attention(h, src_mask), layer.norm1),
              (layer.feed_forward, layer.norm2)]
    for sublayer, norm in blocks:
        if norm_first:  # pre-LN: the residual path stays an identity
            x = x + layer.dropout(sublayer(norm(x)), deterministic)
        else:  # post-LN, the paper: normalise after the residual add
            x = norm(x + layer.dropout(sublayer(x), deterministic))
    return x


# ----------------------------------------------------------------- 16 scaling experiment


def attention_entropy(d_k, scaled, seed=0):
    """Mean entropy (nats) of the softmax over 64 keys of q . k (/ sqrt(d_k) when scaled)."""
    key_q, key_k = jax.random.split(jax.random.key(seed))
    q = jax.random.normal(key_q, (512, d_k))
    k = jax.random.normal(key_k, (64, d_k))
    scores = q @ k.T
    if scaled:
        scores = scores / jnp.sqrt(d_k)
    log_p = jax.nn.log_softmax(scores, axis=-1)
    return jnp.mean(-jnp.sum(jnp.exp(log_p) * log_p, axis=-1))


def my_measurements():
    """(d_k, entropy scaled, entropy unscaled), as measured with attention_entropy(seed=0)."""
    return (
        (4, 3.6405, 2.6616),
        (16, 3.6356, 1.2782),
        (64, 3.6466, 0.5237),
        (256, 3.6772, 0.2543),
        (1024, 3.6868, 0.1232),
    )


# ----------------------------------------------------------------- 17 QK-norm and soft-capping


def qk_norm_scores(query, key, q_scale, k_scale, cap, epsilon=1e-6):
    """RMS-normalised query [T, N, H] and key [S, N, H], scores [N, T, S] soft-capped by cap."""

    def rms_norm(x, scale):  # over each head vector's H features
        return scale * x / jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + epsilon)

    q, k = rms_norm(query, q_scale), rms_norm(key, k_scale)
    scores = jnp.einsum("tnh,snh->nts", q, k) / jnp.sqrt(query.shape[-1])
    return cap * jnp.tanh(scores / cap)


# ----------------------------------------------------------------- 18 the StreamingLLM cache


def streaming_slot(position, num_sinks, window):
    """The slot of [sinks | window] that text token `position` is written to."""
    ring = num_sinks + jnp.mod(position - num_sinks, window)  # the oldest window slot
    return jnp.where(position < num_sinks, position, ring)


def streaming_positions(seen, num_sinks, window):
    """The cache position of each slot [sinks | window] after `seen` tokens (-1: empty)."""
    slots = jnp.arange(num_sinks + window)
    token = jnp.where(slots < num_sinks, slots, -1)  # the text index each slot holds
    newest_slot = jnp.mod(seen - 1 - num_sinks, window)
    age = jnp.mod(newest_slot - (slots - num_sinks), window)  # 0 for the newest token
    kept_sinks = jnp.minimum(seen, num_sinks)
    kept_window = jnp.clip(seen - num_sinks, 0, window)
    in_window = (slots >= num_sinks) & (age < kept_window)
    position = jnp.where(in_window, kept_sinks + kept_window - 1 - age, token)
    return jnp.where((slots < num_sinks) & (slots >= seen), -1, position)


# ----------------------------------------------------------------- 19 recurrent linear attention


def linear_attention_step(S, z, q, k, v):
    """One token of causal linear attention: state S [H, Hv], z [H]; q, k [H], v [Hv]."""
    phi_q, phi_k = jax.nn.elu(q) + 1, jax.nn.elu(k) + 1
    S = S + jnp.outer(phi_k, v)  # add this token first: query t attends itself
    z = z + phi_k
    out = phi_q @ S / (phi_q @ z)
    return out, S, z


# ----------------------------------------------------------------- the source of each solution

_HEADER = "import jax\nimport jax.numpy as jnp\n\n"


def solution_source(exercise: str) -> str:
    """The source of the solution cell for ``exercise`` (a name in ``EXERCISES``)."""
    from attention.exercises.registry import EXERCISES

    parts = []
    for name in EXERCISES[exercise].names:
        value = globals()[name]
        if callable(value):
            parts.append(textwrap.dedent(inspect.getsource(value)))
        else:
            parts.append(f"{name} = {value!r}\n")
    return _HEADER + "\n\n".join(parts)
