"""Tests for attention/inspection/plotting.py.

The pictures are checked through what matplotlib holds: the image's data and mask, the tick
labels, the line segments of an alignment, the lines of the training curves, the PNG bytes
written. The numbers drawn by plot_head_summary are tested in test_analysis.py. Sizes are
distinct (L=2, N=3, T=5, S=7).
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from attention.inspection.analysis import head_entropy, mean_attention_distance, select_map
from attention.inspection.plotting import (
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_heads,
    plot_layers,
    plot_training_curves,
    plot_translation_attention,
)
from attention.mechanism.masks import causal_mask

from ._maps import random_maps, random_weights

L, B, N, T, S = 2, 2, 3, 5, 7
SOURCE = ["<s>", "a", "man", "rides", ".", "</s>", "<pad>"]
TARGET = ["<s>", "ein", "mann", "reitet", "."]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def attention_maps(seed=0):
    return random_maps((L, B, N, T, S), seed)


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


@pytest.mark.outside_annotations
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
    with pytest.raises(TypeError, match=r"max_labels must be a positive int, got 2.5 \(float\)"):
        plot_attention(weights, max_labels=2.5)
    with pytest.raises(TypeError, match=r"max_labels must be a positive int, got True \(bool\)"):
        plot_attention(weights, max_labels=True)


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


def test_heads_grid_is_one_layer_of_the_layers_grid():
    weights = random_weights((N, T, S), seed=4)
    mask = np.ones((T, S), bool)
    mask[:, 2] = False
    common = dict(query_tokens=TARGET, key_tokens=SOURCE, mask=mask, pad_token="<pad>")
    heads, layers = plot_heads(weights, **common), plot_layers(weights[None], **common)
    assert len(images(heads)) == len(images(layers)) == N
    for a, b in zip(images(heads), images(layers), strict=True):
        np.testing.assert_array_equal(a.get_array().data, b.get_array().data)
        np.testing.assert_array_equal(
            np.ma.getmaskarray(a.get_array()), np.ma.getmaskarray(b.get_array())
        )
    expected_mask = ~mask
    expected_mask[:, SOURCE.index("<pad>")] = True
    np.testing.assert_array_equal(np.ma.getmaskarray(images(heads)[1].get_array()), expected_mask)
    # One layer, N <= 4: a single row of heads, and no "layer 0" row label.
    assert heads.axes[0].get_ylabel() == ""
    assert heads.axes[N - 1].get_subplotspec().get_geometry()[:2] == (1, N)


@pytest.mark.outside_annotations
def test_heads_grid_errors_speak_of_n_t_s():
    weights = random_weights((N, T, S))
    with pytest.raises(ValueError, match=r"query_tokens has 7 tokens .* \(shape \[3, 5, 7\]\)"):
        plot_heads(weights, query_tokens=SOURCE)
    with pytest.raises(ValueError, match=r"does not broadcast to \[N, T, S\] = \[3, 5, 7\]"):
        plot_heads(weights, mask=np.ones((2, T, S), bool))
    with pytest.raises(ValueError, match="max_labels must be a positive int, got 0"):
        plot_heads(weights, max_labels=0)
    with pytest.raises(TypeError, match="max_labels must be a positive int"):
        plot_layers(weights[None], max_labels=1.0)


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


@pytest.mark.outside_annotations
def test_alignment_errors():
    with pytest.raises(ValueError, match=r"min_weight must be in \[0, 1\], got 2.0"):
        plot_alignment(random_weights((T, S)), SOURCE, TARGET, min_weight=2.0)
    with pytest.raises(TypeError, match="min_weight must be a number, got '0.1'"):
        plot_alignment(random_weights((T, S)), SOURCE, TARGET, min_weight="0.1")
    with pytest.raises(ValueError, match="target_tokens has 7 tokens but the weights have T=5"):
        plot_alignment(random_weights((T, S)), SOURCE, SOURCE)


# --- summaries -----------------------------------------------------------------------------


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


# --- training curves -----------------------------------------------------------------------


def history_lines(n=7):
    # Seven logged steps; an extra key, as fit logs (tokens_per_second, ...), is ignored.
    return [
        {
            "step": 10 * (i + 1),
            "loss": 5.0 / (i + 1) + 0.3,
            "nll": 5.0 / (i + 1),
            "learning_rate": 1e-4 * min(i + 1, 3) / math.sqrt(i + 1),
            "tokens_per_second": 123.0,
        }
        for i in range(n)
    ]


def test_training_curves_draw_loss_cross_entropy_and_learning_rate():
    history = history_lines()
    fig = plot_training_curves(history, title="svo_to_sov")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_loss, ax_lr = fig.axes
    steps = [10, 20, 30, 40, 50, 60, 70]
    loss, nll = ax_loss.get_lines()
    np.testing.assert_array_equal(loss.get_xdata(), steps)
    np.testing.assert_allclose(loss.get_ydata(), [5.0 / k + 0.3 for k in range(1, 8)])
    np.testing.assert_allclose(nll.get_ydata(), [5.0 / k for k in range(1, 8)])
    assert loss.get_linestyle() == "-" and nll.get_linestyle() == "--"
    assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == [
        "loss (label-smoothed)",
        "cross-entropy (nats/token)",
    ]
    (lr,) = ax_lr.get_lines()
    np.testing.assert_array_equal(lr.get_xdata(), steps)
    np.testing.assert_allclose(lr.get_ydata(), [h["learning_rate"] for h in history])
    assert ax_lr.get_ylabel() == "learning rate"
    assert fig.get_suptitle() == "svo_to_sov"
    assert plot_training_curves(history[:1]).get_suptitle() == ""


def test_training_curves_save_writes_a_png(tmp_path):
    path = tmp_path / "curves.png"
    plot_training_curves(history_lines(), save=path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    with pytest.raises(TypeError, match="save must be a file path, got int"):
        plot_training_curves(history_lines(), save=3)


@pytest.mark.outside_annotations
def test_training_curves_errors_name_the_entry():
    good = history_lines(3)
    with pytest.raises(TypeError, match="history must be a list of dicts .*got dict"):
        plot_training_curves(good[0])
    with pytest.raises(TypeError, match="history must be a list of dicts .*got str"):
        plot_training_curves("loss")
    with pytest.raises(ValueError, match="history is empty"):
        plot_training_curves([])
    with pytest.raises(TypeError, match=r"history\[1\] must be a dict with keys step, loss"):
        plot_training_curves([good[0], 0.5])
    no_nll = [good[0], {k: v for k, v in good[1].items() if k != "nll"}]
    with pytest.raises(ValueError, match=r"history\[1\] has no 'nll'"):
        plot_training_curves(no_nll)
    with pytest.raises(TypeError, match=r"history\[2\]\['loss'\] must be a number, got '1.0'"):
        plot_training_curves([*good[:2], dict(good[2], loss="1.0")])
    with pytest.raises(ValueError, match=r"history\[0\]\['learning_rate'\] must be in"):
        plot_training_curves([dict(good[0], learning_rate=float("nan"))])


def test_figures_show_in_jupyter_without_the_inline_backend():
    from IPython.core.formatters import DisplayFormatter

    from attention.inspection.plotting import plot_attention

    fig = plot_attention(np.full((2, 3), 1 / 3), query_tokens=["a", "b"], key_tokens=list("xyz"))
    data, _ = DisplayFormatter().format(fig)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
