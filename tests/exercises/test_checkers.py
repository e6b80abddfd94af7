"""Each checker: the model solution passes; each usual mistake fails with its explanation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention import exercises
from attention.exercises import EXERCISES, solutions
from attention.exercises import checkers as ck


def test_every_solution_passes():
    for exercise in EXERCISES.values():
        result = exercise.check_namespace(vars(solutions))
        assert result.passed, result
        assert result.status == "passed"
        assert str(result).startswith(f"[PASS] {exercise.name}: ")


def _fails(result, *fragments, status="failed"):
    assert not result.passed, result
    assert result.status == status, result
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in {result.message!r}"


# --------------------------------------------------------------------------- shared behaviour


def test_not_implemented_blank_is_reported_not_raised():
    def blank(query, key):
        raise NotImplementedError("your code here")

    result = exercises.check_dot_product_scores(blank)
    _fails(result, "not implemented yet", "dot_product_scores", status="not implemented")
    assert str(result).startswith("[TODO]")
    assert "not implemented yet" in result._repr_html_()


def test_student_exception_is_reported_with_inputs_and_line():
    def broken(query, key):
        x = query + 1
        return x @ key  # matmul of [B, T, N, H] by [B, S, N, H]: a shape error

    _fails(exercises.check_dot_product_scores(broken),
           "your function `dot_product_scores` raised ValueError",
           "line 3 of `broken`: `return x @ key", "query [2, 3, 7, 16], key [2, 5, 7, 16]")


def test_returning_none_and_package_function():
    def no_return(query, key):
        jnp.einsum("btnh,bsnh->bnts", query, key)

    _fails(exercises.check_dot_product_scores(no_return), "returned None", "`return`")
    from attention import dot_product_scores

    _fails(exercises.check_dot_product_scores(dot_product_scores), "package's own")


# --------------------------------------------------------------------------- 00 combining


def test_combine_embeddings_mistakes():
    check = exercises.check_combine_embeddings
    _fails(check(lambda u, v: (u * v, u - v, u + v), "c"), "your sum is u * v")
    _fails(check(lambda u, v: (u + v, v - u, u * v), "c"), "v - u")
    _fails(check(lambda u, v: (u + v, u - v, jnp.sum(u * v, -1)), "c"), "dot product")
    _fails(check(lambda u, v: (u + v, u - v), "c"), "three arrays")
    _fails(check(solutions.combine_embeddings, "a"), "the sum cannot", "w . u + w . v")
    _fails(check(solutions.combine_embeddings, "difference"), "the difference cannot")
    _fails(check(solutions.combine_embeddings, ""), "answer the question",
           status="not implemented")
    assert check(solutions.combine_embeddings, "(c) product").passed


# --------------------------------------------------------------------------- 01 scores


def test_dot_product_scores_mistakes():
    check = exercises.check_dot_product_scores
    unscaled = lambda q, k: jnp.einsum("btnh,bsnh->bnts", q, k)
    _fails(check(unscaled), "sqrt(d_k)=4.00 times too large")
    by_dk = lambda q, k: jnp.einsum("btnh,bsnh->bnts", q, k) / q.shape[-1]
    _fails(check(by_dk), "sqrt(d_k)=4.00 times too small", "not by d_k")
    swapped = lambda q, k: jnp.einsum("btnh,bsnh->btns", q, k) / math.sqrt(q.shape[-1])
    _fails(check(swapped), "your scores has shape [2, 3, 7, 5]; expected [2, 7, 3, 5]",
           "axes 1 and 2 look swapped")

    def python_if(q, k):
        scores = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
        if scores.max() > 100:  # Python control flow on a traced value
            scores = scores / 2
        return scores

    _fails(check(python_if), "breaks under jax.jit", "TracerBoolConversionError",
           "jnp.where")

    def numpy_inside(q, k):
        return np.einsum("btnh,bsnh->bnts", np.asarray(q), np.asarray(k)) / 4.0 * (
            4.0 / math.sqrt(q.shape[-1]))

    _fails(check(numpy_inside), "breaks under jax.jit", "converted to NumPy")

    def host_callback(q, k):  # fine eagerly and under jit; pure_callback cannot be vmapped
        s = jnp.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(q.shape[-1])
        return jax.pure_callback(np.asarray, jax.ShapeDtypeStruct(s.shape, s.dtype), s)

    _fails(check(host_callback), "breaks under jax.vmap")


# --------------------------------------------------------------------------- 02 softmax


def test_stable_softmax_mistakes():
    check = exercises.check_stable_softmax
    naive = lambda x: jnp.exp(x) / jnp.sum(jnp.exp(x), axis=-1, keepdims=True)
    _fails(check(naive), "for large scores", "Subtract each row's maximum")

    def global_max(x):
        e = jnp.exp(x - jnp.max(x))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    _fails(check(global_max), "rows sit at very different levels", "one maximum for the whole")

    def wrong_axis(x):
        e = jnp.exp(x - jnp.max(x, axis=-2, keepdims=True))
        return e / jnp.sum(e, axis=-2, keepdims=True)

    _fails(check(wrong_axis), "sum to one over axis 2 (T)")
    _fails(check(lambda x: jnp.exp(x - jnp.max(x, -1, keepdims=True))),
           "do not sum to one over the keys")


# --------------------------------------------------------------------------- 03 masking


def _masking(causal=None, padding=None, softmax=None):
    return exercises.check_masking(causal or solutions.causal_mask,
                                   padding or solutions.padding_mask,
                                   softmax or solutions.masked_softmax)


def test_causal_mask_mistakes():
    flipped = lambda T, S: ~solutions.causal_mask(T, S)
    _fails(_masking(causal=flipped), "wrong polarity", "True must mean \"may attend\"")
    upper = lambda T, S: jnp.arange(S)[None, :] >= jnp.arange(T)[:, None]
    _fails(_masking(causal=upper), "see the future")
    strict = lambda T, S: jnp.arange(S)[None, :] < jnp.arange(T)[:, None]
    _fails(_masking(causal=strict), "hides the diagonal")
    additive = lambda T, S: jnp.where(solutions.causal_mask(T, S), 0.0, -jnp.inf)
    _fails(_masking(causal=additive), "additive mask", "boolean")
    transposed = lambda T, S: solutions.causal_mask(T, S).T
    _fails(_masking(causal=transposed), "has shape [5, 3]; expected [3, 5]")


def test_padding_mask_mistakes():
    flat = lambda lengths, S: jnp.arange(S)[None, :] < lengths[:, None]
    _fails(_masking(padding=flat), "[B, 1, 1, S]", "mask[:, None, None, :]")
    flipped = lambda lengths, S: ~solutions.padding_mask(lengths, S)
    _fails(_masking(padding=flipped), "padding mask has the wrong polarity")
    off = lambda lengths, S: (jnp.arange(S)[None, :] <= lengths[:, None])[:, None, None, :]
    _fails(_masking(padding=off), "off by one")


def test_masked_softmax_mistakes():
    ignores_mask = lambda x, m: solutions.stable_softmax(x)
    _fails(_masking(softmax=ignores_mask), "masked positions receive weight", "is False")
    flipped = lambda x, m: solutions.masked_softmax(x, ~m)
    _fails(_masking(softmax=flipped), "wrong polarity")

    def minus_inf(x, m):
        x = jnp.where(m, x, -jnp.inf)
        e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
        return e / jnp.sum(e, axis=-1, keepdims=True)

    _fails(_masking(softmax=minus_inf), "fully masked row", "nan", "all-zero weights")

    def large_negative(x, m):
        return solutions.stable_softmax(jnp.where(m, x, -1e9))

    _fails(_masking(softmax=large_negative), "fully masked row", "convention is all zeros")

    def boolean_indexing(x, m):
        if not bool(jnp.any(m)):
            return jnp.zeros_like(x)
        return solutions.masked_softmax(x, m)

    _fails(_masking(softmax=boolean_indexing), "breaks under jax.jit",
           "Python control flow")


# --------------------------------------------------------------------------- 04 attention


def _attention_from(weights_fn):
    def attention(q, k, v, mask=None):
        s = jnp.einsum("btnh,bsnh->bnts", q, k)
        return jnp.einsum("bnts,bsnh->btnh", weights_fn(s, q.shape[-1], mask), v)

    return attention


def test_scaled_dot_product_attention_mistakes():
    check = exercises.check_scaled_dot_product_attention
    good = lambda s, H, m: solutions.masked_softmax(s / math.sqrt(H), True if m is None else m)
    _fails(check(_attention_from(lambda s, H, m: good(s * math.sqrt(H), H, m))),
           "without the 1/sqrt(d_k) scaling", "sqrt(16) = 4.00")
    _fails(check(_attention_from(lambda s, H, m: good(s / math.sqrt(H), H, m))),
           "divided the scores by d_k = 16")
    _fails(check(_attention_from(lambda s, H, m: good(s, H, None))), "you ignored the mask")
    _fails(check(_attention_from(lambda s, H, m: good(s, H, None if m is None else ~m))),
           "wrong polarity")

    def leaky(s, H, m):  # a soft mask: -3 instead of a large negative lets the future in
        s = s / math.sqrt(H)
        return jax.nn.softmax(s if m is None else jnp.where(m, s, s - 3.0), axis=-1)

    _fails(check(_attention_from(leaky)), "future tokens leak", "d out[0] / d value[1]")

    def nan_when_empty(s, H, m):
        s = s / math.sqrt(H)
        return jax.nn.softmax(s if m is None else jnp.where(m, s, -jnp.inf), axis=-1)

    _fails(check(_attention_from(nan_when_empty)), "all padding", "nan")

    def average_when_empty(s, H, m):
        s = s / math.sqrt(H)
        return jax.nn.softmax(s if m is None else jnp.where(m, s, -1e9), axis=-1)

    _fails(check(_attention_from(average_when_empty)), "plain average of the values")

    def swapped(q, k, v, mask=None):
        return jnp.swapaxes(solutions.scaled_dot_product_attention(q, k, v, mask), 1, 2)

    _fails(check(swapped), "expected [2, 3, 7, 16] ([B, T, N, H]): axes 1 and 2 look swapped")


# --------------------------------------------------------------------------- 05 heads


def test_split_merge_heads_mistakes():
    check = exercises.check_split_merge_heads

    def strided(x, n):
        return x.reshape(*x.shape[:-1], x.shape[-1] // n, n).swapaxes(-1, -2)

    _fails(check(strided, solutions.merge_heads), "split along the wrong axis", "every N-th")

    def heads_first(x, n):
        B, T, D = x.shape
        return x.reshape(B, n, T, D // n)

    _fails(check(heads_first, solutions.merge_heads), "axes 1 and 2 look swapped")

    def mixes_positions(x, n):
        B, T, D = x.shape
        return x.reshape(B, n, T, D // n).transpose(0, 2, 1, 3)

    _fails(check(mixes_positions, solutions.merge_heads), "mixes positions")
    interleave = lambda x: x.swapaxes(-1, -2).reshape(*x.shape[:-2], -1)
    _fails(check(solutions.split_heads, interleave), "interleaves the heads")


# --------------------------------------------------------------------------- 06 multi-head


def _mha(*, strided=False, scale_by=None, project=True):
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


def test_multi_head_attention_mistakes():
    check = exercises.check_multi_head_attention
    assert check(_mha()).passed
    _fails(check(_mha(strided=True)), "split along the wrong axis")
    _fails(check(_mha(scale_by=112)), "1/sqrt(d_model) = 1/sqrt(112)", "sqrt(16)")
    _fails(check(_mha(project=False)), "forgot the output projection")

    def ignores_mask(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
        return _mha()(x, w_q, w_k, w_v, w_o, num_heads)

    _fails(check(ignores_mask), "you ignored the mask")


# --------------------------------------------------------------------------- 07 positions


def test_sinusoidal_positions_mistakes():
    check = exercises.check_sinusoidal_positions

    def table(max_len, d, *, swap=False, concat=False, start=0, exponent="2i"):
        pos = jnp.arange(start, start + max_len, dtype=jnp.float32)[:, None]
        i = jnp.arange(d // 2, dtype=jnp.float32)[None, :]
        angle = pos / 10000.0 ** ((2 * i if exponent == "2i" else i) / d)
        sin, cos = jnp.sin(angle), jnp.cos(angle)
        if swap:
            sin, cos = cos, sin
        if concat:
            return jnp.concatenate([sin, cos], axis=-1)
        return jnp.stack([sin, cos], axis=-1).reshape(max_len, d)

    assert check(table).passed
    _fails(check(lambda L, d: table(L, d, swap=True)), "sine and cosine are swapped")
    _fails(check(lambda L, d: table(L, d, concat=True)), "sines first")
    _fails(check(lambda L, d: table(L, d, start=1)), "start at 1")
    _fails(check(lambda L, d: table(L, d, exponent="i")), "frequencies are off")
    _fails(check(lambda L, d: table(L, d).T), "has shape [12, 7]; expected [7, 12]")


# --------------------------------------------------------------------------- 08 causal


def _causal(allowed):
    def causal_self_attention(x, w_q, w_k, w_v, w_o, num_heads):
        T = x.shape[1]
        mask = allowed(jnp.arange(T)[:, None], jnp.arange(T)[None, :])
        return _mha()(x, w_q, w_k, w_v, w_o, num_heads, mask=mask)

    return causal_self_attention


def test_causal_self_attention_mistakes():
    check = exercises.check_causal_self_attention
    _fails(check(_causal(lambda t, s: s > t)), "wrong polarity")
    _fails(check(_causal(lambda t, s: s < t)), "hides the diagonal")
    _fails(check(_causal(lambda t, s: s <= t + 1)), "future tokens leak",
           "output position t=0 changes when the input x at position s=1")
    _fails(check(_causal(lambda t, s: s >= 0)), "future tokens leak")


# --------------------------------------------------------------------------- 09 greedy


def test_greedy_decoding_mistakes():
    check = exercises.check_greedy_decoding

    def with_bos(model, src, max_len):
        tokens = solutions.greedy_decode(model, src, max_len)
        bos = jnp.full((src.shape[0], 1), model.config.bos_id, tokens.dtype)
        return jnp.concatenate([bos, tokens], axis=1)

    _fails(check(with_bos), "start with bos")

    def no_stop(model, src, max_len):
        config = model.config
        memory = model.encode(src, deterministic=True)
        inputs = jnp.full((src.shape[0], max_len), config.pad_id).at[:, 0].set(config.bos_id)
        out = []
        for t in range(max_len):
            logits = model.decode(inputs, memory, src, deterministic=True)[:, t]
            logits = logits.at[:, config.pad_id].set(-1e9).at[:, config.bos_id].set(-1e9)
            token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            out.append(token)
            if t + 1 < max_len:
                inputs = inputs.at[:, t + 1].set(token)
        return jnp.stack(out, axis=1)

    _fails(check(no_stop), "kept generating", "must be pad_id")
    _fails(check(lambda model, src, max_len: jnp.zeros((src.shape[0], max_len), jnp.int32)),
           "pad or bos")


# --------------------------------------------------------------------------- 10 loss


def _loss(*, mask_pad=True, smooth="paper", naive=False, mean=True):
    def label_smoothed_loss(logits, targets, label_smoothing=0.1, pad_id=0):
        V = logits.shape[-1]
        eps = label_smoothing
        if naive:
            log_p = jnp.log(jnp.exp(logits) / jnp.sum(jnp.exp(logits), -1, keepdims=True))
        else:
            log_p = jax.nn.log_softmax(logits, axis=-1)
        onehot = jax.nn.one_hot(targets, V)
        q = {
            "paper": (1 - eps) * onehot + eps / V,
            "none": onehot,
            "v-1": (1 - eps) * onehot + eps / (V - 1) * (1 - onehot),
        }[smooth]
        loss = -jnp.sum(q * log_p, axis=-1)
        real = (targets != pad_id) if mask_pad else jnp.ones(targets.shape, bool)
        total = jnp.sum(jnp.where(real, loss, 0.0))
        return total / jnp.sum(real) if mean else total

    return label_smoothed_loss


def test_label_smoothing_mistakes():
    check = exercises.check_label_smoothing
    assert check(_loss()).passed
    _fails(check(_loss(mask_pad=False)), "includes the padding positions")
    _fails(check(_loss(smooth="none")), "ignores label_smoothing")
    _fails(check(_loss(smooth="v-1")), "V - 1 wrong words")
    _fails(check(_loss(mean=False)), "sum over the", "expected their mean")
    _fails(check(_loss(naive=True)), "for large logits", "jax.nn.log_softmax")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_registry_names_match_notebook_blanks(name):
    """Every exercise's names are defined by its solution and its notebook's blank cell."""
    import pathlib

    exercise = EXERCISES[name]
    notebook = pathlib.Path(__file__).parents[2] / "notebooks" / "exercises"
    text = (notebook / f"{exercise.notebook}.py").read_text()
    for n in exercise.names:
        assert hasattr(solutions, n)
        assert f"def {n}(" in text or f"{n} = " in text
    assert exercise.minutes > 0 and exercise.check.exercise == name
    assert getattr(ck, exercise.check.__name__) is exercise.check


# --------------------------------------------------------------------------- 11 grouped-query


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
    _fails(check(_gqa(order="tile")), "repeated in the wrong order", "n // (N/K)",
           "jnp.repeat(key, N // K, axis=2)")
    _fails(check(_gqa(scale=False)), "without the 1/sqrt(d_k) scaling", "sqrt(16) = 4.00")
    _fails(check(_gqa(layout="bnth")), "shape [2, 6, 3, 16] = [B, N, T, H]",
           "[B, T, N, H] = [2, 3, 6, 16]")
    _fails(check(_gqa(causal="none")), "you ignored is_causal")
    _fails(check(_gqa(causal="s < t")), "hides the diagonal")


# --------------------------------------------------------------------------- 12 rotary positions


def _rope(*, layout="interleaved", exponent=2.0, sign=1.0, use_positions=True):
    """A student's apply_rope with one chosen mistake."""

    def apply_rope(x, positions, base=10000.0):
        T, H = x.shape[-3], x.shape[-1]
        pos = positions if use_positions else jnp.arange(T)
        theta = base ** (-exponent * jnp.arange(H // 2) / H)
        angle = sign * pos[:, None] * theta  # [T, H/2]
        cos, sin = jnp.cos(angle)[:, None, :], jnp.sin(angle)[:, None, :]
        if layout == "interleaved":
            a, b = x[..., 0::2], x[..., 1::2]
            return jnp.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(x.shape)
        a, b = x[..., : H // 2], x[..., H // 2:]
        return jnp.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    return apply_rope


def test_rotary_positions_mistakes():
    check = exercises.check_rotary_positions
    right = solutions.rope_attention
    _fails(check(_rope(layout="half"), right), "(x_i, x_{i+H/2})", "(x_2i, x_2i+1)",
           "RoFormer")
    _fails(check(_rope(exponent=1.0), right), "base^(-i/H)", "base^(-2i/H)")
    _fails(check(_rope(sign=-1.0), right), "rotate by -angle")
    _fails(check(_rope(use_positions=False), right), "instead of the `positions` argument")
    stretched = lambda x, positions: 2.0 * solutions.apply_rope(x, positions)
    _fails(check(stretched, right), "changes the length of the pairs")

    def rotates_values(query, key, value, positions):
        rope = solutions.apply_rope
        return jax.nn.dot_product_attention(
            rope(query, positions), rope(key, positions), rope(value, positions))

    def rotates_queries_only(query, key, value, positions):
        return jax.nn.dot_product_attention(solutions.apply_rope(query, positions), key, value)

    _fails(check(solutions.apply_rope, rotates_values), "you rotated the values too")
    _fails(check(solutions.apply_rope, rotates_queries_only), "rotated only the queries")
    _fails(exercises.EXERCISES["rotary_positions"].check_namespace(
        {"apply_rope": solutions.apply_rope}), "rope_attention not defined",
        status="not implemented")


# --------------------------------------------------------------------------- 13 sliding window


def _window(rule):
    def sliding_window_mask(T, window):
        t, s = jnp.arange(T)[:, None], jnp.arange(T)[None, :]
        return rule(t, s, window)

    return sliding_window_mask


def test_sliding_window_mask_mistakes():
    check = exercises.check_sliding_window_mask
    _fails(check(_window(lambda t, s, w: (s <= t) & (t - s < w))), "one token short",
           "itself AND the `window` tokens before it", "local_window_size=(window, 0)")
    _fails(check(_window(lambda t, s, w: jnp.abs(t - s) <= w)), "band is symmetric",
           "s <= t")
    _fails(check(_window(lambda t, s, w: ((s <= t) & (t - s <= w)).astype(jnp.float32))),
           "dtype float32", "boolean")
    _fails(check(_window(lambda t, s, w: s <= t)), "the window is ignored")
    _fails(check(_window(lambda t, s, w: (s >= t) & (s - t <= w))), "transposed")
