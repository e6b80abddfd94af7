"""Tests for attention/inspection/views.py in Python: the checks, the stored data, the HTML.

What the page does in a browser is tests/inspection/test_views_browser.py. Here: distinct
sizes on every axis (L=2, N=3, T=5, S=7); the stored weights decoded back from base64 and
compared with NumPy's ``round(255 w)`` in ``[L, N, T, S]`` order; every bad input named.
"""

import base64
import re

import jax.numpy as jnp
import numpy as np
import pytest

from attention.inspection.views import (
    MAX_FILE_BYTES,
    PAGE_BYTES,
    AttentionView,
    attention_section,
    head_view,
    model_view,
    translation_view,
)

from ._maps import random_maps, random_weights

L, N, T, S = 2, 3, 5, 7
SOURCE = ["the", "big", "dog", "sees", "a", "cat", "</s>"]
TARGET = ["<s>", "ta", "dog", "big", "ta"]


def _decoded(view, i=0):
    section = view.data()["sections"][i]
    levels = np.frombuffer(base64.b64decode(section["levels"]), np.uint8)
    allowed = np.frombuffer(base64.b64decode(section["allowed"]), np.uint8)
    shape = tuple(section[a] for a in "LNTS")
    return levels.reshape(shape), allowed.reshape(shape[2:]).astype(bool)


def test_stored_levels_are_the_weights_in_LNTS_order():
    weights = random_weights((L, N, T, S), seed=1)
    view = head_view(weights, TARGET, SOURCE)
    levels, allowed = _decoded(view)
    assert levels.shape == (L, N, T, S) and allowed.all()
    np.testing.assert_array_equal(levels, np.rint(weights * 255).astype(np.uint8))
    # 8 bits: what the page shows is within half a level of the weight
    assert np.abs(levels / 255 - weights).max() <= 0.5 / 255 + 1e-7


def test_a_list_of_jax_layers_is_the_same_as_one_array():
    weights = random_weights((L, N, T, T), seed=2)
    from_list = head_view([jnp.asarray(w) for w in weights], TARGET, causal=True)
    from_array = head_view(weights, TARGET, causal=True)
    np.testing.assert_array_equal(_decoded(from_list)[0], _decoded(from_array)[0])


def test_masks_causal_padding_and_explicit():
    weights = random_weights((1, N, T, T), seed=3)
    tokens = ["<s>", "a", "b", "<pad>", "<pad>"]
    section = attention_section("decoder", weights, tokens, causal=True, pad_token="<pad>")
    expected = np.tril(np.ones((T, T), bool))
    expected[3:, :] = False
    expected[:, 3:] = False
    np.testing.assert_array_equal(section.allowed, expected)
    # masked entries are stored as 0 whatever the weight there
    assert (section.levels()[..., ~expected] == 0).all()
    explicit = np.ones((T, S), bool)
    explicit[:, -1] = False
    cross = attention_section("cross", random_weights((1, N, T, S)), TARGET, SOURCE,
                              mask=explicit)
    np.testing.assert_array_equal(cross.allowed, explicit)


def test_translation_view_has_the_three_kinds_from_attention_maps():
    maps = random_maps((L, 2, N, T, S), seed=4)
    view = translation_view(maps, SOURCE, TARGET, example=1)
    assert [s.sizes for s in view.sections] == [(L, N, S, S), (L, N, T, T), (L, N, T, S)]
    np.testing.assert_array_equal(
        _decoded(view, 2)[0], np.rint(maps["decoder_cross"][:, 1] * 255).astype(np.uint8))
    np.testing.assert_array_equal(_decoded(view, 1)[1], np.tril(np.ones((T, T), bool)))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((L, 1, N, T, S), np.float32), r"shape \[L, N, T, S\].*got shape \[2, 1, 3, 5, 7\]"),
    (np.zeros((T, S), np.float32), r"got shape \[5, 7\]"),
    ([np.zeros((N, T, S), np.float32), np.zeros((N, T, T), np.float32)],
     r"layers\[1\] has shape \[3, 5, 5\] but layers\[0\] has \[3, 5, 7\]"),
    ([np.zeros((1, N, T, S), np.float32)],
     r"layers\[0\] must have shape \[N, T, S\].*\[1, 3, 5, 7\]"),
    ([], "empty"),
])
def test_wrong_shapes_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        head_view(bad, TARGET, SOURCE)


def test_tokens_that_do_not_match_the_weights_are_named():
    weights = random_weights((L, N, T, S))
    with pytest.raises(ValueError, match=r"query_tokens has 4 tokens but the weights have T=5 "
                                         r"\(shape \[2, 3, 5, 7\]\)"):
        head_view(weights, TARGET[:4], SOURCE)
    with pytest.raises(ValueError, match=r"key_tokens has 6 tokens but the weights have S=7"):
        head_view(weights, TARGET, SOURCE[:6])
    with pytest.raises(ValueError, match=r"key_tokens is None.*T=5 queries and S=7 keys"):
        head_view(weights, TARGET)
    with pytest.raises(ValueError, match=r"source_tokens has 6 tokens but the weights have S=7"):
        translation_view(random_maps((L, 1, N, T, S)), SOURCE[:6], TARGET)
    with pytest.raises(TypeError, match="query_tokens must be a sequence"):
        head_view(weights, "the big dog sees a", SOURCE)


def test_nan_weights_scores_and_wrong_types_are_refused():
    weights = random_weights((L, N, T, S))
    weights[1, 2, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite.*\[l, n, t, s\] = \[1, 2, 3, 4\]"):
        head_view(weights, TARGET, SOURCE)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got values from -2 to 3"):
        head_view(np.linspace(-2, 3, L * N * T * S, dtype=np.float32).reshape(L, N, T, S),
                  TARGET, SOURCE)
    with pytest.raises(TypeError, match="floating dtype"):
        head_view(np.zeros((L, N, T, S), np.int32), TARGET, SOURCE)
    with pytest.raises(ValueError, match=r"causal=True needs square weights.*T=5, S=7"):
        head_view(random_weights((L, N, T, S)), TARGET, SOURCE, causal=True)
    with pytest.raises(ValueError, match="mask"):
        head_view(random_weights((L, N, T, S)), TARGET, SOURCE, mask=np.ones((S, T), bool))
    with pytest.raises(ValueError, match="view must be one of head, model"):
        AttentionView(attention_section("x", random_weights((1, 1, 2, 2)), ["a", "b"]),
                      view="grid")


def test_the_size_bound_holds_and_is_enforced():
    # The largest view the issue asks for: three kinds of 12 layers x 16 heads x 128 x 128,
    # labels of 200 characters. Zero-stride arrays keep the test's memory small.
    tokens = [f"{i:03d}" + "x" * 197 for i in range(128)]
    layers = np.broadcast_to(np.float32(1 / 128), (12, 16, 128, 128))
    sections = [attention_section(f"kind {i}", layers, tokens, causal=i == 1) for i in range(3)]
    view = AttentionView(sections, title="largest")
    size = len(view.to_html().encode())
    # the stated formula: 4/3 byte per weight and per mask entry, plus page and labels
    weights_and_masks = 3 * (12 * 16 + 1) * 128 * 128 * 4 / 3
    assert weights_and_masks < size <= view.file_bytes() <= weights_and_masks + PAGE_BYTES + 200_000
    assert view.file_bytes() <= MAX_FILE_BYTES
    small = head_view(random_weights((L, N, T, S)), TARGET, SOURCE)
    assert len(small.to_html().encode()) <= small.file_bytes()
    with pytest.raises(ValueError, match=r"would take up to \d+ bytes.*kind 3 \[L, N, T, S\] = "
                                         r"\[12, 16, 128, 128\].*more than MAX_FILE_BYTES"):
        AttentionView(sections + [attention_section("kind 3", layers, tokens)])


def test_html_is_self_contained_and_tokens_cannot_break_out():
    tokens = ["</script><b>x</b>", "<!--", "a&b", "\"'", "ok"]
    view = model_view(random_weights((1, 2, 5, 5)), tokens, title="<i>t</i>")
    page = view.to_html()
    assert page.count("</script>") == 2  # the data's and the code's, nothing from a token
    assert "<!--" not in page and "<b>x</b>" not in page and "<i>t</i>" not in page
    assert not re.search(r"<script[^>]*\ssrc=|<link|require\(|import\(|https?://(?!www\.w3\.org)",
                         page)
    fragment = view._repr_html_()
    assert fragment.startswith("<div class='attnview'") and "<html" not in fragment
    assert view.data()["view"] == "model"


def test_save_writes_the_document(tmp_path):
    path = head_view(random_weights((1, 1, 3, 3)), ["a", "b", "c"]).save(tmp_path / "v.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")


def test_a_decoder_only_model_is_viewed_with_its_own_causal_weights():
    from flax import nnx

    from attention.model.config import TransformerConfig
    from attention.model.language_model import LanguageModel, language_model_attention_maps

    config = TransformerConfig.language_model(vocab_size=11, d_model=16, num_heads=2, d_ff=32,
                                              num_layers=2)
    model = LanguageModel(config, rngs=nnx.Rngs(0))
    tokens = jnp.array([[1, 5, 6, 7, 4]])
    maps = language_model_attention_maps(model, tokens)["decoder_self"][:, 0]  # [L, N, T, T]
    labels = ["<s>", "a", "man", "in", "red"]
    levels, allowed = _decoded(head_view(maps, labels, causal=True))
    np.testing.assert_array_equal(levels, np.rint(np.asarray(maps) * 255).astype(np.uint8))
    # the future is shown as masked, and it is where the model gives no weight
    T = len(labels)
    future = ~np.tril(np.ones((T, T), bool))
    assert not allowed[..., future].any() and allowed[..., ~future].all()
    assert np.all(np.asarray(maps)[..., future] == 0)
