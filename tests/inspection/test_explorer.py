"""Tests for attention/inspection/explorer.py: build the explorer from precomputed data, drive it.

No browser and no kernel: setting a widget's ``value`` from Python runs the same callbacks a
click does, and we check what is shown (the figure's title and image data, the PNG bytes of
the Image widget, the beam table's HTML). Two sentences of different lengths (S=7, T=5 and
S=4, T=3) with L=2 layers and N=3 heads.
"""

import numpy as np
import pytest

from attention.inspection.explorer import AttentionExplorer

L, N = 2, 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_weights(shape, seed):
    return (
        np.random.default_rng(seed)
        .dirichlet(np.ones(shape[-1]), size=shape[:-1])
        .astype(np.float32)
    )


def example(source, target, seed, batch=1, index=None):
    S, T = len(source), len(target)
    data = {
        "source_tokens": source,
        "target_tokens": target,
        "attention_maps": {
            "encoder_self": random_weights((L, batch, N, S, S), seed),
            "decoder_self": random_weights((L, batch, N, T, T), seed + 1),
            "decoder_cross": random_weights((L, batch, N, T, S), seed + 2),
        },
    }
    if index is not None:
        data["index"] = index
    return data


EXAMPLES = [
    example(
        ["<s>", "a", "dog", "runs", ".", "</s>", "<pad>"],
        ["<s>", "ein", "hund", "rennt", "."],
        seed=0,
    ),
    example(["<s>", "hello", "!", "</s>"], ["<s>", "hallo", "!"], seed=10, batch=2, index=1),
]
SOURCE = ["<s>", "a", "dog", "runs", ".", "</s>", "<pad>"]
BEAM_STEPS = [
    {
        "step": 0,
        "beams": [(["<s>", "ein"], -0.2), (["<s>", "der"], -1.9)],
        "cross_attention": random_weights((2, 7), 20),
    },
    {
        "step": 1,
        "beams": [
            (["<s>", "ein", "hund"], -0.5),
            (["<s>", "der", "hund"], -2.1),
            (["<s>", "ein", "<b>"], -3.0),
        ],
        "cross_attention": random_weights((3, 7), 21),
    },
    {"step": 2, "beams": [("<s> ein hund rennt", -0.8)]},
]


def shown(explorer):
    return explorer.figure.axes[0].get_images()[0].get_array()


@pytest.fixture
def explorer():
    return AttentionExplorer(EXAMPLES, BEAM_STEPS, beam_source_tokens=SOURCE, pad_token="<pad>")


def test_starts_on_cross_attention_of_the_last_layer(explorer):
    maps = EXAMPLES[0]["attention_maps"]
    assert explorer.figure.axes[0].get_title() == ("sentence 0: cross, layer 1, mean of heads")
    np.testing.assert_allclose(shown(explorer), maps["decoder_cross"][1, 0].mean(0), rtol=1e-6)
    assert bytes(explorer.image.value).startswith(PNG_SIGNATURE)
    assert explorer.widget.children[0] is explorer.example
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_layer_head_and_kind_change_the_picture(explorer):
    maps = EXAMPLES[0]["attention_maps"]
    first_png = bytes(explorer.image.value)
    explorer.layer.value = 0
    assert explorer.figure.axes[0].get_title() == "sentence 0: cross, layer 0, mean of heads"
    assert bytes(explorer.image.value) != first_png
    explorer.head.value = 2
    np.testing.assert_array_equal(shown(explorer).data, maps["decoder_cross"][0, 0, 2])
    explorer.kind.value = "encoder_self"
    np.testing.assert_array_equal(shown(explorer).data, maps["encoder_self"][0, 0, 2])
    # The padding column and row are masked.
    assert np.ma.getmaskarray(shown(explorer))[:, -1].all()
    explorer.kind.value = "decoder_self"
    np.testing.assert_array_equal(
        np.ma.getmaskarray(shown(explorer)), ~np.tril(np.ones((5, 5), bool))
    )
    labels = [t.get_text() for t in explorer.figure.axes[0].get_yticklabels()]
    assert labels == EXAMPLES[0]["target_tokens"]


def test_all_heads_and_alignment_views(explorer):
    explorer.head.value = "all"
    assert len(explorer.figure.axes[0].get_images()) == 1
    assert sum(len(ax.get_images()) for ax in explorer.figure.axes) == N
    assert explorer.figure.get_suptitle().endswith("all heads")
    explorer.kind.value = "alignment"
    assert explorer.figure.axes[0].get_title() == (
        "sentence 0: cross: alignment, layer 1, mean of heads"
    )
    assert len(explorer.figure.axes[0].collections) == 1


def test_switching_sentence_uses_its_batch_index_and_lengths(explorer):
    explorer.head.value = 1
    explorer.example.value = 1
    maps = EXAMPLES[1]["attention_maps"]
    np.testing.assert_array_equal(shown(explorer).data, maps["decoder_cross"][1, 1, 1])
    assert shown(explorer).shape == (3, 4)
    assert explorer.figure.axes[0].get_title().startswith("sentence 1:")
    assert [label for label, _ in explorer.example.options][1].startswith("1: <s> hello")


def test_sentences_with_a_different_head_count_reset_the_head_choice():
    other = example(["a", "b"], ["c"], seed=30)
    other["attention_maps"] = {k: v[:, :, :1] for k, v in other["attention_maps"].items()}
    explorer = AttentionExplorer([EXAMPLES[0], other])
    explorer.head.value = 2
    explorer.example.value = 1
    assert explorer.head.value == "mean"
    assert [value for _, value in explorer.head.options] == ["mean", "all", 0]


def test_beam_steps_show_beams_and_their_attention(explorer):
    assert "ein" in explorer.beam_table.value and "-0.200" in explorer.beam_table.value
    beam_png = bytes(explorer.beam_image.value)
    assert beam_png.startswith(PNG_SIGNATURE)
    np.testing.assert_array_equal(
        explorer.beam_figure.axes[0].get_images()[0].get_array().data,
        BEAM_STEPS[0]["cross_attention"],
    )
    explorer.step.value = 1
    assert "step 1: 3 beam(s)" in explorer.beam_table.value
    assert "&lt;b&gt;" in explorer.beam_table.value  # tokens are escaped, not HTML
    assert bytes(explorer.beam_image.value) != beam_png
    labels = [t.get_text() for t in explorer.beam_figure.axes[0].get_yticklabels()]
    assert labels == ["0: hund", "1: hund", "2: <b>"]
    explorer.step.value = 2  # no attention at this step: table only
    assert explorer.beam_figure is None and explorer.beam_image.layout.display == "none"
    assert "<b>&lt;s&gt; ein hund rennt</b>" in explorer.beam_table.value


def test_main_view_and_beams_are_independent(explorer):
    main_png = bytes(explorer.image.value)
    explorer.step.value = 1
    assert bytes(explorer.image.value) == main_png


@pytest.mark.outside_annotations
def test_errors_name_the_entry():
    with pytest.raises(ValueError, match="examples must be a non-empty list"):
        AttentionExplorer([])
    with pytest.raises(KeyError, match=r"examples\[0\] has no 'attention_maps'"):
        AttentionExplorer([{"source_tokens": [], "target_tokens": []}])
    bad = dict(EXAMPLES[0], source_tokens=SOURCE[:-1])
    with pytest.raises(
        ValueError,
        match=r"examples\[0\]\['source_tokens'\] has 6 tokens but "
        r"the weights have S=7",
    ):
        AttentionExplorer([bad])
    with pytest.raises(ValueError, match=r"examples\[1\]\['index'\] must be an int in 0..1"):
        AttentionExplorer([EXAMPLES[0], dict(EXAMPLES[1], index=2)])
    with pytest.raises(ValueError, match=r"examples\[1\]\['index'\] must be an int in 0..1 .*-1"):
        AttentionExplorer([EXAMPLES[0], dict(EXAMPLES[1], index=-1)])
    with pytest.raises(TypeError, match=r"examples\[1\]\['index'\] must be an int .*\(bool\)"):
        AttentionExplorer([EXAMPLES[0], dict(EXAMPLES[1], index=True)])
    # A NumPy integer (from a shape or an argmax) is an index too.
    assert AttentionExplorer([dict(EXAMPLES[1], index=np.int64(1))]).examples[0]["index"] == 1
    with pytest.raises(ValueError, match="max_labels must be a positive int, got 0"):
        AttentionExplorer(EXAMPLES, max_labels=0)
    with pytest.raises(TypeError, match=r"max_labels must be a positive int, got 2.5 \(float\)"):
        AttentionExplorer(EXAMPLES, max_labels=2.5)
    broken = dict(EXAMPLES[0], attention_maps={"encoder_self": np.ones((2, 1, 3, 7, 7))})
    with pytest.raises(KeyError, match=r"examples\[0\]\['attention_maps'\]: .*no 'decoder_self'"):
        AttentionExplorer([broken])
    steps = [{"step": 0, "beams": [(["a"], -1.0)], "cross_attention": np.ones((2, 7))}]
    with pytest.raises(
        ValueError,
        match=r"beam_steps\[0\]\['cross_attention'\] must have shape "
        r"\[K, S\] with K=1 beams, got \[2, 7\]",
    ):
        AttentionExplorer(EXAMPLES, steps)
    steps = [{"step": 0, "beams": [(["a"], -1.0)], "cross_attention": np.ones((1, 6))}]
    with pytest.raises(ValueError, match=r"has S=6 but beam_source_tokens has 7 tokens"):
        AttentionExplorer(EXAMPLES, steps, beam_source_tokens=SOURCE)
    with pytest.raises(
        ValueError,
        match=r"beam_steps\[0\]\['beams'\]\[0\] must be a "
        r"\(tokens, score\) pair",
    ):
        AttentionExplorer(EXAMPLES, [{"beams": [("a", 1.0, 2.0)]}])
