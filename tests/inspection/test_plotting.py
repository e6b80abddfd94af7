"""Tests for attention/inspection/plotting.py.

The pictures are checked through what matplotlib holds: the image's data and mask, the tick
labels, the line segments of an alignment, the PNG bytes written. The summaries (entropy,
mean distance) are checked against independent NumPy computations and closed forms: uniform
rows give log S, one-hot rows give 0. Sizes are distinct (L=2, N=3, T=5, S=7).
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from attention.mechanism.masks import causal_mask
from attention.inspection.plotting import (
    head_entropy,
    mean_attention_distance,
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_heads,
    plot_layers,
    plot_translation_attention,
    select_map,
)

L, B, N, T, S = 2, 2, 3, 5, 7
SOURCE = ["<s>", "a", "man", "rides", ".", "</s>", "<pad>"]
TARGET = ["<s>", "ein", "mann", "reitet", "."]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_weights(shape, seed=0):
    return (
        np.random.default_rng(seed)
        .dirichlet(np.ones(shape[-1]), size=shape[:-1])
        .astype(np.float32)
    )


def attention_maps(seed=0):
    return {
        "encoder_self": random_weights((L, B, N, S, S), seed),
        "decoder_self": random_weights((L, B, N, T, T), seed + 1),
        "decoder_cross": random_weights((L, B, N, T, S), seed + 2),
    }


def images(fig):
    return [image for ax in fig.axes for image in ax.get_images()]


def tick_texts(labels):
    return [label.get_text() for label in labels]


# --- plot_attention ------------------------------------------------------------------------


def test_heatmap_has_token_labels_data_and_colorbar():
    weights = random_weights((T, S))
    fig = plot_attention(weights, query_tokens=TARGET, key_tokens=SOURCE, title="cross")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert tick_texts(ax.get_xticklabels()) == SOURCE
    assert tick_texts(ax.get_yticklabels()) == TARGET
    assert ax.get_title() == "cross"
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), weights)
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    assert fig.axes[1].get_ylabel().startswith("attention weight")


def test_accepts_jax_arrays_and_draws_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plot_attention(jnp.asarray(random_weights((T, S))), ax=ax, colorbar=False)
    assert out is fig and len(ax.get_images()) == 1


def test_explicit_mask_is_shown_masked_not_as_zero():
    weights = np.asarray(jnp.where(causal_mask(T, S), jnp.asarray(random_weights((T, S))), 0.0))
    fig = plot_attention(weights, mask=causal_mask(T, S))
    shown = fig.axes[0].get_images()[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(shown), ~np.asarray(causal_mask(T, S)))
    assert "masked" in fig.axes[1].get_ylabel()
    # The masked cells are transparent in the image, so the hatched patch behind shows.
    assert fig.axes[0].get_images()[0].cmap.get_bad()[3] == 0.0
    assert any(patch.get_hatch() for patch in fig.axes[0].patches)


def test_pad_token_masks_rows_and_columns():
    query = TARGET[:-1] + ["<pad>"]
    fig = plot_attention(
        random_weights((T, S)), query_tokens=query, key_tokens=SOURCE, pad_token="<pad>"
    )
    mask = np.ma.getmaskarray(fig.axes[0].get_images()[0].get_array())
    expected = np.zeros((T, S), bool)
    expected[:, SOURCE.index("<pad>")] = True
    expected[T - 1, :] = True
    np.testing.assert_array_equal(mask, expected)


def test_mask_broadcasts_and_combines_with_padding():
    key_mask = np.array([True] * (S - 2) + [False, True])  # [S]: hide key S-2
    fig = plot_attention(
        random_weights((T, S)), key_tokens=SOURCE, mask=key_mask, pad_token="<pad>"
    )
    mask = np.ma.getmaskarray(fig.axes[0].get_images()[0].get_array())
    assert mask[:, S - 2].all() and mask[:, S - 1].all() and not mask[:, : S - 2].any()


def test_save_writes_a_png(tmp_path):
    path = tmp_path / "attention.png"
    plot_attention(random_weights((T, S)), query_tokens=TARGET, key_tokens=SOURCE, save=path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_long_sentences_thin_the_labels_and_shrink_the_font():
    n = 100
    tokens = [f"w{i}" for i in range(n)]
    fig = plot_attention(
        random_weights((n, n)), query_tokens=tokens, key_tokens=tokens, max_labels=40
    )
    ax = fig.axes[0]
    step = math.ceil(n / 40)  # 3
    assert tick_texts(ax.get_xticklabels()) == tokens[::step]
    assert list(ax.get_yticks()) == list(range(0, n, step))
    short = plot_attention(random_weights((T, S)), query_tokens=TARGET, key_tokens=SOURCE)
    long_size = ax.get_xticklabels()[0].get_fontsize()
    short_size = short.axes[0].get_xticklabels()[0].get_fontsize()
    assert 6 <= long_size <= short_size <= 10
    # The figure grows with the sentence.
    assert fig.get_size_inches()[0] > short.get_size_inches()[0]


def test_plot_attention_errors_name_the_argument():
    weights = random_weights((T, S))
    with pytest.raises(
        ValueError,
        match=r"weights must have 2 dimensions \[T, S\], got shape "
        r"\[3, 5, 7\]",
    ):
        plot_attention(random_weights((N, T, S)))
    with pytest.raises(TypeError, match="weights must have a floating dtype"):
        plot_attention(np.ones((T, S), np.int32))
    with pytest.raises(
        ValueError,
        match=r"key_tokens has 6 tokens but the weights have S=7 "
        r"\(shape \[5, 7\]\)",
    ):
        plot_attention(weights, key_tokens=SOURCE[:-1])
    with pytest.raises(ValueError, match=r"query_tokens has 7 tokens but the weights have T=5"):
        plot_attention(weights, query_tokens=SOURCE)
    with pytest.raises(TypeError, match="query_tokens must be a sequence of token strings"):
        plot_attention(weights, query_tokens="abcde")
    with pytest.raises(
        ValueError,
        match=r"mask of shape \[5, 6\] does not broadcast to "
        r"\[T, S\] = \[5, 7\]",
    ):
        plot_attention(weights, mask=np.ones((T, S - 1), bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        plot_attention(weights, mask=np.ones((T, S)))
    with pytest.raises(ValueError, match="pad_token='<pad>' needs the tokens"):
        plot_attention(weights, pad_token="<pad>")
    with pytest.raises(ValueError, match="max_labels must be a positive int, got 0"):
        plot_attention(weights, max_labels=0)


# --- grids ---------------------------------------------------------------------------------


def test_heads_grid_draws_every_head_on_one_scale():
    weights = random_weights((N, T, S))
    fig = plot_heads(
        weights, query_tokens=TARGET, key_tokens=SOURCE, pad_token="<pad>", title="layer 0"
    )
    drawn = images(fig)
    assert len(drawn) == N
    for n, image in enumerate(drawn):
        np.testing.assert_array_equal(image.get_array().data, weights[n])
        assert np.ma.getmaskarray(image.get_array())[:, S - 1].all()
    assert {image.get_clim() for image in drawn} == {drawn[0].get_clim()}
    assert [ax.get_title() for ax in fig.axes[:N]] == [f"head {n}" for n in range(N)]
    assert fig.get_suptitle() == "layer 0"


def test_heads_grid_into_given_axes_and_wrong_count():
    fig = Figure()
    axes = fig.subplots(1, N)
    assert plot_heads(random_weights((N, T, S)), axes=axes) is fig
    with pytest.raises(ValueError, match=r"axes holds 2 axes but the weights need 3"):
        plot_heads(random_weights((N, T, S)), axes=Figure().subplots(1, 2))
    with pytest.raises(ValueError, match=r"weights must have 3 dimensions \[N, T, S\]"):
        plot_heads(random_weights((T, S)))


def test_layers_grid_is_layers_by_heads_with_mask():
    weights = random_weights((L, N, T, T))
    fig = plot_layers(weights, query_tokens=TARGET, key_tokens=TARGET, mask=causal_mask(T))
    drawn = images(fig)
    assert len(drawn) == L * N
    np.testing.assert_array_equal(drawn[N + 1].get_array().data, weights[1, 1])
    assert np.ma.getmaskarray(drawn[-1].get_array())[0, 1]  # above the diagonal: masked
    assert fig.axes[N].get_ylabel() == "layer 1"


def test_translation_draws_three_kinds_with_causal_mask(tmp_path):
    maps = attention_maps()
    fig = plot_translation_attention(
        maps, SOURCE, TARGET, example=1, layer=0, head=2, pad_token="<pad>", save=tmp_path / "t.png"
    )
    encoder, decoder, cross = (ax.get_images()[0] for ax in fig.axes[:3])
    np.testing.assert_array_equal(encoder.get_array().data, maps["encoder_self"][0, 1, 2])
    np.testing.assert_array_equal(cross.get_array().data, maps["decoder_cross"][0, 1, 2])
    np.testing.assert_array_equal(
        np.ma.getmaskarray(decoder.get_array()), ~np.tril(np.ones((T, T), bool))
    )
    assert tick_texts(fig.axes[2].get_xticklabels()) == SOURCE
    assert "cross-attention" in fig.axes[2].get_title()
    assert (tmp_path / "t.png").read_bytes().startswith(PNG_SIGNATURE)


def test_translation_mean_over_heads_and_errors():
    maps = attention_maps()
    fig = plot_translation_attention(maps, SOURCE, TARGET)  # last layer, mean of heads
    np.testing.assert_allclose(
        fig.axes[2].get_images()[0].get_array(),
        maps["decoder_cross"][-1, 0].mean(axis=0),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        select_map(maps, "decoder_self", layer=-1, head=None),
        maps["decoder_self"][1, 0].mean(axis=0),
        rtol=1e-6,
    )
    with pytest.raises(KeyError, match="maps has no 'decoder_cross' entry"):
        plot_translation_attention(
            {k: v for k, v in maps.items() if k != "decoder_cross"}, SOURCE, TARGET
        )
    bad = dict(maps, decoder_cross=maps["decoder_cross"][..., :-1])
    with pytest.raises(ValueError, match=r"maps\['decoder_cross'\] has S=6"):
        plot_translation_attention(bad, SOURCE, TARGET)
    with pytest.raises(
        ValueError,
        match=r"maps\['encoder_self'\] must have shape "
        r"\[L, B, N, S, S\], got \[2, 3, 7, 7\]",
    ):
        plot_translation_attention(
            dict(maps, encoder_self=maps["encoder_self"][:, 0]), SOURCE, TARGET
        )
    with pytest.raises(ValueError, match="head=3 is out of range for N=3"):
        plot_translation_attention(maps, SOURCE, TARGET, head=3)
    with pytest.raises(ValueError, match="source_tokens has 5 tokens but the weights have S=7"):
        plot_translation_attention(maps, TARGET, TARGET)


# --- alignment -----------------------------------------------------------------------------


def test_alignment_lines_follow_the_weights():
    weights = random_weights((T, S), seed=3)
    fig = plot_alignment(weights, SOURCE, TARGET, pad_token="<pad>", min_weight=0.1)
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    drawn = (weights >= 0.1) & (np.array(SOURCE) != "<pad>")[None, :]
    t_index, s_index = np.nonzero(drawn)
    assert len(lines.get_segments()) == drawn.sum()
    np.testing.assert_allclose(lines.get_colors()[:, 3], weights[t_index, s_index], rtol=1e-6)
    # Heavier weights, wider lines.
    order = np.argsort(weights[t_index, s_index])
    assert np.all(np.diff(np.asarray(lines.get_linewidths())[order]) >= 0)
    texts = [text.get_text() for text in ax.texts]
    assert all(token in texts for token in SOURCE + TARGET)


def test_alignment_segments_join_source_to_target_positions():
    weights = np.zeros((2, 3), np.float32)
    weights[0, 2] = 1.0  # target 0 <- source 2
    weights[1, 0] = 1.0  # target 1 <- source 0
    fig = plot_alignment(weights, ["a", "b", "c"], ["x", "y"])
    segments = fig.axes[0].collections[0].get_segments()
    # Source at x=0, y=s; target at x=1, centred: y = 0.5 + t.
    np.testing.assert_allclose(segments[0], [[0.0, 2.0], [1.0, 0.5]])
    np.testing.assert_allclose(segments[1], [[0.0, 0.0], [1.0, 1.5]])


def test_alignment_errors():
    with pytest.raises(ValueError, match="min_weight must lie in"):
        plot_alignment(random_weights((T, S)), SOURCE, TARGET, min_weight=2.0)
    with pytest.raises(ValueError, match="target_tokens has 7 tokens but the weights have T=5"):
        plot_alignment(random_weights((T, S)), SOURCE, SOURCE)


# --- summaries -----------------------------------------------------------------------------


def numpy_entropy(weights):
    p = weights.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(-1).mean(-1)


def numpy_distance(weights):
    T_, S_ = weights.shape[-2:]
    rows = []
    for t in range(T_):
        rows.append(sum(weights[..., t, s] * abs(t - s) for s in range(S_)))
    return np.mean(rows, axis=0)


def test_entropy_uniform_rows_is_log_s_in_nats_and_bits():
    weights = np.full((L, N, T, S), 1.0 / S, np.float32)
    np.testing.assert_allclose(head_entropy(weights), np.full((L, N), np.log(S)), rtol=1e-6)
    np.testing.assert_allclose(head_entropy(weights, base=2), np.log2(S), rtol=1e-6)


def test_one_hot_diagonal_has_zero_entropy_and_zero_distance():
    weights = np.broadcast_to(np.eye(T, dtype=np.float32), (N, T, T))
    np.testing.assert_array_equal(head_entropy(weights), np.zeros(N))
    np.testing.assert_array_equal(mean_attention_distance(weights), np.zeros(N))


def test_summaries_match_numpy_on_random_weights():
    weights = random_weights((L, N, T, S), seed=5)
    np.testing.assert_allclose(head_entropy(weights), numpy_entropy(weights), rtol=1e-5)
    np.testing.assert_allclose(mean_attention_distance(weights), numpy_distance(weights), rtol=1e-5)
    assert head_entropy(weights).shape == mean_attention_distance(weights).shape == (L, N)


def test_distance_of_a_first_token_head():
    weights = np.zeros((1, T, S), np.float32)
    weights[0, :, 0] = 1.0  # every query looks at key 0: distance t
    np.testing.assert_allclose(mean_attention_distance(weights), [np.mean(np.arange(T))])


def test_mask_renormalises_rows_and_skips_empty_rows():
    weights = np.full((1, T, S), 1.0 / S, np.float32)
    mask = np.zeros((T, S), bool)
    mask[:, :2] = True  # two keys allowed: uniform over 2 after renormalising
    mask[0] = False  # a query with nothing to look at: left out of the mean
    np.testing.assert_allclose(head_entropy(weights, mask), [np.log(2)], rtol=1e-6)
    causal = np.asarray(causal_mask(T, S))
    causal_weights = np.where(causal, 1.0, 0.0).astype(np.float32)
    causal_weights /= causal_weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        head_entropy(causal_weights[None], causal),
        [np.mean(np.log(np.arange(1, T + 1)))],
        rtol=1e-6,
    )


def test_summary_errors():
    with pytest.raises(
        ValueError,
        match=r"weights must have shape \[\.\.\., N, T, S\].*got "
        r"\[5, 7\]",
    ):
        head_entropy(random_weights((T, S)))
    with pytest.raises(ValueError, match="base must be greater than 1"):
        head_entropy(random_weights((N, T, S)), base=1)
    with pytest.raises(ValueError, match=r"mask of shape \[4\] does not broadcast"):
        mean_attention_distance(random_weights((N, T, S)), np.ones(4, bool))


def test_head_summary_plot_shows_entropy_and_distance(tmp_path):
    weights = random_weights((L, N, T, S), seed=6)
    fig = plot_head_summary(weights, title="cross", save=tmp_path / "s.png")
    entropy_image, distance_image = images(fig)
    np.testing.assert_allclose(entropy_image.get_array(), head_entropy(weights, base=2))
    np.testing.assert_allclose(distance_image.get_array(), mean_attention_distance(weights))
    assert fig.axes[0].get_title() == "entropy (bits)"
    assert len(fig.axes[0].texts) == L * N  # one value per cell
    assert (tmp_path / "s.png").read_bytes().startswith(PNG_SIGNATURE)
    one_layer = plot_head_summary(weights[0], mask=np.ones((T, S), bool))
    assert images(one_layer)[0].get_array().shape == (1, N)
    with pytest.raises(ValueError, match=r"weights must have shape \[L, N, T, S\]"):
        plot_head_summary(random_weights((T, S)))


def test_figures_show_in_jupyter_without_the_inline_backend():
    from IPython.core.formatters import DisplayFormatter

    from attention.inspection.plotting import plot_attention

    fig = plot_attention(np.full((2, 3), 1 / 3), query_tokens=["a", "b"], key_tokens=list("xyz"))
    data, _ = DisplayFormatter().format(fig)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
