"""Head detectors against hand-built attention maps whose scores are known."""

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

from attention.inspection.heads import (
    SCORES,
    duplicate_token_score,
    head_scores,
    head_table,
    induction_score,
    plot_head_scores,
    previous_token_score,
    repeated_random_tokens,
    sink_score,
)

P = 5  # the period of the repeated tokens: T = 2 * P = 10


def one_hot_rows(targets):
    """A ``[T, T]`` map whose row t puts all its weight on key ``targets[t]``."""
    return np.eye(len(targets), dtype=np.float32)[targets]


def previous_token_map(T):
    return one_hot_rows([0] + list(range(T - 1)))


def duplicate_map(T, period):  # the second half looks at the same token one period back
    return one_hot_rows([t - period if t >= period else t for t in range(T)])


def induction_map(T, period):  # ... at the token after it
    return one_hot_rows([t - period + 1 if t >= period else t for t in range(T)])


def uniform_causal_map(T):
    return np.tril(np.ones((T, T), np.float32)) / np.arange(1, T + 1, dtype=np.float32)[:, None]


@pytest.fixture
def tokens():
    return repeated_random_tokens(50, P, seed=3)[0]


def test_repeated_random_tokens_repeat_once():
    tokens = repeated_random_tokens(40, 7, 3, first=0, low=1, seed=2)
    assert tokens.shape == (3, 15) and tokens.dtype == np.int32
    assert np.all(tokens[:, 0] == 0) and np.all(tokens[:, 1:8] == tokens[:, 8:])
    assert all(len(set(row[1:8])) == 7 for row in tokens) and tokens[:, 1:].min() >= 1
    with pytest.raises(ValueError, match="period=8"):
        repeated_random_tokens(8, 8, low=1)


def test_each_detector_finds_its_own_head(tokens):
    T = 2 * P
    maps = {"previous": previous_token_map(T), "duplicate": duplicate_map(T, P),
            "induction": induction_map(T, P)}
    assert previous_token_score(maps["previous"]) == pytest.approx(1.0)
    assert duplicate_token_score(maps["duplicate"], tokens) == pytest.approx(1.0)
    assert induction_score(maps["induction"], tokens) == pytest.approx(1.0)
    # ... and not the others' heads.
    assert duplicate_token_score(maps["induction"], tokens) == pytest.approx(0.0)
    assert induction_score(maps["duplicate"], tokens) == pytest.approx(0.0)
    assert previous_token_score(maps["duplicate"]) == pytest.approx(0.0)
    # The previous-token head is on the induction target only where that is t - 1: never here.
    assert induction_score(maps["previous"], tokens) == pytest.approx(0.0)


def test_known_fractions_of_a_uniform_head(tokens):
    T = 2 * P
    uniform = uniform_causal_map(T)
    expected = np.mean(1.0 / np.arange(2, T + 1))  # rows t >= 1 give 1 / (t + 1) to each key
    assert previous_token_score(uniform) == pytest.approx(expected)
    assert sink_score(uniform) == pytest.approx(expected)
    # Second-half rows t have one earlier duplicate (and one induction target) of 1 / (t + 1).
    second = np.mean(1.0 / (np.arange(P, T) + 1))
    assert duplicate_token_score(uniform, tokens) == pytest.approx(second)
    assert induction_score(uniform, tokens) == pytest.approx(second)
    sink = one_hot_rows([0] * T)
    assert sink_score(sink) == pytest.approx(1.0) and previous_token_score(sink) == pytest.approx(
        1 / (T - 1))


def test_no_repeat_gives_nan():
    assert np.isnan(induction_score(uniform_causal_map(4), np.arange(4)))
    assert np.isnan(duplicate_token_score(uniform_causal_map(4), np.arange(4)))


def test_head_scores_table_and_plot(tokens):
    T = 2 * P
    B_tokens = np.stack([tokens, tokens])
    heads = [previous_token_map(T), duplicate_map(T, P), induction_map(T, P),
             one_hot_rows([0] * T)]
    layer_NTT = np.stack(heads)
    maps_LBNTT = jnp.asarray(np.stack([np.stack([layer_NTT] * 2), np.stack([layer_NTT[::-1]] * 2)]))
    scores = head_scores(maps_LBNTT, B_tokens)
    assert list(scores) == list(SCORES) and scores["induction"].shape == (2, 4)
    for n, name in enumerate(SCORES):
        assert scores[name][0, n] == pytest.approx(1.0)
        assert scores[name][1, 3 - n] == pytest.approx(1.0)
    table = head_table(scores, top=3)
    assert table.splitlines()[0].split() == ["head", *SCORES]
    assert len(table.splitlines()) == 4
    figure = plot_head_scores(scores, title="hand-built")
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) == 5
    matplotlib.pyplot.close(figure)


@pytest.mark.outside_annotations
def test_bad_maps_and_tokens_are_named(tokens):
    with pytest.raises(ValueError, match=r"\[\.\.\., T, T\]"):
        previous_token_score(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"tokens must be \[10\]"):
        induction_score(uniform_causal_map(10), tokens[:4])
    with pytest.raises(TypeError, match="tokens"):
        induction_score(uniform_causal_map(10), tokens.astype(float))
    with pytest.raises(ValueError, match=r"tokens must be \[1, 10\]"):
        head_scores(np.ones((1, 1, 2, 10, 10), np.float32), tokens)
