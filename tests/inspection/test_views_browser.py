"""The attention views of attention/inspection/views.py in a real browser (headless Chromium).

A saved view is opened from its file and driven as a user drives it: hover a token, click a
head, pick a layer, switch the kind of attention, open the model view and enlarge a map. What
the page draws (its SVG lines, its token classes, the pixels of its heatmap canvas) is compared
with the weights computed here in NumPy: the line of head n from query t to key s exists when
``round(255 w[l, n, t, s])`` reaches the threshold and t may see s, and its opacity is that
level over 255. Sizes differ on every axis (L=2, N=3, T=5, S=7, one padded source position).
"""

import time

import numpy as np
import pytest

from attention.inspection.views import AttentionView, attention_section, translation_view
from tests._browser import ConsoleErrors, chromium

from ._maps import random_maps

L, N, T, S = 2, 3, 5, 7
SOURCE = ["the", "big", "dog", "sees", "a", "cat", "<pad>"]
TARGET = ["<s>", "ta", "dog", "big", "ta"]
MIN_LEVEL = 3  # ceil(255 * 0.01), the view's default threshold without a hover

LINES = """() => Array.from(document.querySelectorAll('.attnview line.av-line')).map(l => [
  +l.dataset.head, +l.dataset.query, +l.dataset.key, +l.getAttribute('stroke-opacity')])"""


@pytest.fixture(scope="module")
def maps():
    return random_maps((L, 1, N, T, S), seed=11)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(tmp_path_factory, maps, browser):
    path = tmp_path_factory.mktemp("view") / "view.html"
    translation_view(maps, SOURCE, TARGET, pad_token="<pad>").save(path)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.errors = ConsoleErrors(page)
    page.goto(path.as_uri())
    yield page
    page.close()


def expected_lines(weights_LNTS, allowed_TS, layer, heads, min_level, query=None, key=None):
    """{(n, t, s): opacity} for the lines the head view should draw, from NumPy."""
    levels = np.rint(weights_LNTS[layer] * 255)
    lines = {}
    for n in heads:
        for t in range(levels.shape[1]):
            for s in range(levels.shape[2]):
                if (query is not None and t != query) or (key is not None and s != key):
                    continue
                if allowed_TS[t, s] and levels[n, t, s] >= min_level:
                    lines[(n, t, s)] = levels[n, t, s] / 255
    return lines


def drawn(page):
    return {(n, t, s): opacity for n, t, s, opacity in page.evaluate(LINES)}


def assert_same_lines(got, want):
    assert set(got) == set(want)
    for line, opacity in want.items():
        assert abs(got[line] - opacity) < 1e-3, line


def test_head_view_hover_toggle_heads_and_layers(page, maps):
    encoder = maps["encoder_self"][:, 0]
    allowed = np.ones((S, S), bool)
    allowed[:, -1] = allowed[-1, :] = False  # the padding position
    page.click("button.av-section[data-section='0']")
    assert page.is_visible(".av-head-view") and not page.is_visible(".av-model-view")
    assert page.locator(".av-token[data-side=query]").count() == S
    assert_same_lines(drawn(page), expected_lines(encoder, allowed, 0, range(N), MIN_LEVEL))

    # hover query 2: only its lines stay, every one however faint, and nothing else
    page.hover(".av-token[data-side=query][data-index='2']")
    got = drawn(page)
    assert got and {t for _, t, _ in got} == {2}
    assert_same_lines(got, expected_lines(encoder, allowed, 0, range(N), 1, query=2))
    assert page.get_attribute(".av-token[data-side=query][data-index='2']",
                              "class").split().count("av-active") == 1
    masked = page.eval_on_selector_all(".av-token[data-side=key].av-masked",
                                       "nodes => nodes.map(n => +n.dataset.index)")
    assert masked == [S - 1]  # the padding key, which query 2 may not see
    # hover a key: its column
    page.hover(".av-token[data-side=key][data-index='4']")
    assert_same_lines(drawn(page), expected_lines(encoder, allowed, 0, range(N), 1, key=4))

    # leave: every query's lines come back
    page.mouse.move(5, 5)
    assert_same_lines(drawn(page), expected_lines(encoder, allowed, 0, range(N), MIN_LEVEL))

    # click head 1 off
    page.click("button.av-head[data-head='1']")
    assert page.get_attribute("button.av-head[data-head='1']", "aria-pressed") == "false"
    assert_same_lines(drawn(page), expected_lines(encoder, allowed, 0, [0, 2], MIN_LEVEL))
    # layer 1, still without head 1
    page.select_option("select.av-layer", "1")
    assert_same_lines(drawn(page), expected_lines(encoder, allowed, 1, [0, 2], MIN_LEVEL))
    # double-click head 2: only it
    page.dblclick("button.av-head[data-head='2']")
    assert_same_lines(drawn(page), expected_lines(encoder, allowed, 1, [2], MIN_LEVEL))
    assert page.errors == []


def test_decoder_self_attention_shows_the_future_masked_and_cross_attention(page, maps):
    page.click("button.av-section[data-section='1']")
    assert page.locator(".av-token[data-side=key]").count() == T
    page.hover(".av-token[data-side=query][data-index='1']")
    masked = page.eval_on_selector_all(".av-token[data-side=key].av-masked",
                                       "nodes => nodes.map(n => +n.dataset.index)")
    assert masked == [2, 3, 4]  # the future of query 1
    assert {s for _, _, s in drawn(page)} <= {0, 1}
    # cross-attention: queries are the target, keys the source; its padding key hatched
    page.click("button.av-section[data-section='2']")
    assert page.locator(".av-token[data-side=query]").count() == T
    assert page.locator(".av-token[data-side=key]").count() == S
    assert page.locator(".av-token[data-side=key].av-pad").count() == 1
    cross = maps["decoder_cross"][:, 0]
    allowed = np.ones((T, S), bool)
    allowed[:, -1] = False
    page.select_option("select.av-layer", "0")  # the layer stays when the kind changes
    page.hover(".av-token[data-side=query][data-index='3']")
    heads = [n for n in range(N) if page.get_attribute(
        f"button.av-head[data-head='{n}']", "aria-pressed") == "true"]
    assert heads == list(range(N))  # a new kind starts with every head on
    assert_same_lines(drawn(page), expected_lines(cross, allowed, 0, heads, 1, query=3))
    assert page.errors == []


def test_model_view_grid_and_enlarged_map(page, maps):
    page.click("button.av-section[data-section='2']")
    page.click("button.av-view[data-view='model']")
    assert page.is_visible(".av-model-view") and not page.is_visible(".av-head-view")
    assert page.locator("canvas.av-cell").count() == L * N
    page.click("canvas.av-cell[data-layer='1'][data-head='2']")
    assert page.inner_text(".av-zoom-title") == "cross-attention, layer 1, head 2"
    pixels = np.array(page.eval_on_selector(
        "canvas.av-zoom-canvas",
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"),
        dtype=np.int64).reshape(T, S, 4)[..., :3]
    # the documented colour map: white (w = 0) to (8, 48, 107) (w = 1), by the 8-bit level
    w = np.rint(maps["decoder_cross"][1, 0, 2] * 255)[..., None] / 255
    want = np.rint(255 - w * (255 - np.array([8, 48, 107])))
    np.testing.assert_array_equal(pixels[:, :-1], want[:, :-1])
    assert (pixels[:, -1] == pixels[:, -1, :1]).all()  # the padding column: grey hatch
    # pointing at a cell reads its weight
    box = page.locator("canvas.av-zoom-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 4.5 / S, box["y"] + box["height"] * 0.5 / T)
    weight = np.rint(maps["decoder_cross"][1, 0, 2, 0, 4] * 255) / 255
    assert page.inner_text(".av-info").endswith(f": {weight:.3f}")
    # and "open in head view" goes there with that layer and only that head
    page.click("button.av-open-head")
    assert page.is_visible(".av-head-view")
    assert page.input_value("select.av-layer") == "1"
    pressed = page.eval_on_selector_all("button.av-head", "bs => bs.map(b => b.ariaPressed)")
    assert pressed == ["false", "false", "true"]
    assert page.errors == []


def test_largest_view_opens_thins_labels_and_stays_responsive(tmp_path, browser):
    # A decoder-only model's causal self-attention at the limits: 12 layers, 16 heads,
    # 128 tokens; peaked rows, as trained heads have.
    Lb, Nb, Tb = 12, 16, 128
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(Lb, Nb, Tb, Tb)).astype(np.float32) * 3
    scores = np.where(np.tril(np.ones((Tb, Tb), bool)), scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    tokens = [f"tok{i}" for i in range(Tb)]
    view = AttentionView([attention_section("self-attention", list(weights), tokens,
                                            causal=True)])
    path = view.save(tmp_path / "large.html")
    assert path.stat().st_size <= view.file_bytes()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = ConsoleErrors(page)
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector(".av-token[data-index='127']")
    labelled = page.locator(".av-token[data-side=query]:not(.av-thin)").count()
    assert 1 < labelled <= 40  # max_labels, every token still there and hoverable
    page.hover(".av-token[data-side=query][data-index='127']")
    got = drawn(page)
    want = expected_lines(weights, np.tril(np.ones((Tb, Tb), bool)), 0, range(Nb), 1,
                          query=127)
    assert_same_lines(got, want)
    page.click("button.av-view[data-view='model']")
    assert page.locator("canvas.av-cell").count() == Lb * Nb
    seconds = time.perf_counter() - start
    assert errors == []
    assert seconds < 30, f"the largest view took {seconds:.1f} s to open and drive"
