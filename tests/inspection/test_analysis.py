"""Tests for attention/inspection/analysis.py: the attention-maps schema and head statistics.

The statistics are checked against NumPy written out loop by loop and against closed forms
(uniform rows give log S, one-hot rows give 0); alignment_accuracy against a case worked out by
hand, a pure-Python loop, and the hand-written scoring it replaces in notebook 08. Sizes are
distinct on every axis (L=2, B=4, N=3, T=5, S=7).
"""

import ast
import math
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from attention.data.synthetic import SVO_LEXICON, make_task, svo_alignment
from attention.inspection import analysis
from attention.inspection.analysis import (
    MAP_KINDS,
    alignment_accuracy,
    check_attention_maps,
    head_entropy,
    mean_attention_distance,
    select_map,
)
from attention.mechanism.masks import causal_mask

from ._maps import random_maps, random_weights

L, B, N, T, S = 2, 4, 3, 5, 7


def attention_maps(seed=0):
    return random_maps((L, B, N, T, S), seed)


def test_analysis_does_not_import_matplotlib():
    # Read the module's own imports (importing it would load the package root, which
    # imports plotting): the statistics must run where matplotlib is absent.
    tree = ast.parse(pathlib.Path(analysis.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "numpy" in imported
    assert not [name for name in imported if name.split(".")[0] == "matplotlib"]
    assert "attention.inspection.plotting" not in imported


# --- the schema ----------------------------------------------------------------------------


def test_check_attention_maps_returns_the_sizes():
    assert MAP_KINDS == {"encoder_self": "LBNSS", "decoder_self": "LBNTT", "decoder_cross": "LBNTS"}
    assert check_attention_maps(attention_maps()) == (L, B, N, T, S)
    as_jax = {kind: jnp.asarray(array) for kind, array in attention_maps().items()}
    assert check_attention_maps(as_jax) == (L, B, N, T, S)


def test_check_attention_maps_errors():
    maps = attention_maps()
    with pytest.raises(TypeError, match="maps must be the dict returned by attention_maps"):
        check_attention_maps([maps["decoder_cross"]])
    with pytest.raises(KeyError, match="maps has no 'decoder_self' entry"):
        check_attention_maps({k: v for k, v in maps.items() if k != "decoder_self"})
    with pytest.raises(TypeError, match=r"maps\['decoder_cross'\] must have a floating dtype"):
        check_attention_maps(dict(maps, decoder_cross=np.ones((L, B, N, T, S), np.int32)))
    with pytest.raises(
        ValueError,
        match=r"maps\['encoder_self'\] must have shape \[L, B, N, S, S\], got \[2, 3, 7, 7\]",
    ):
        check_attention_maps(dict(maps, encoder_self=maps["encoder_self"][:, 0]))
    with pytest.raises(ValueError, match=r"maps\['decoder_cross'\] has S=6 .* has S=7"):
        check_attention_maps(dict(maps, decoder_cross=maps["decoder_cross"][..., :-1]))
    with pytest.raises(ValueError, match=r"maps\['decoder_self'\] has B=3 .* has B=4"):
        check_attention_maps(dict(maps, decoder_self=maps["decoder_self"][:, :3]))


def test_select_map_picks_a_head_or_the_mean_of_heads():
    maps = attention_maps()
    np.testing.assert_array_equal(
        select_map(maps, "decoder_cross", example=3, layer=0, head=2),
        maps["decoder_cross"][0, 3, 2],
    )
    np.testing.assert_array_equal(
        select_map(maps, "encoder_self", example=-1, layer=1, head=-3),
        maps["encoder_self"][1, B - 1, 0],
    )
    expected = (maps["decoder_self"][1, 2, 0] + maps["decoder_self"][1, 2, 1]
                + maps["decoder_self"][1, 2, 2]) / 3
    np.testing.assert_allclose(select_map(maps, "decoder_self", example=2), expected, rtol=1e-6)
    assert select_map(maps, "decoder_cross").shape == (T, S)


def test_select_map_errors():
    maps = attention_maps()
    with pytest.raises(ValueError, match="kind must be one of .*, got 'cross'"):
        select_map(maps, "cross")
    with pytest.raises(ValueError, match="head=3 is out of range for N=3"):
        select_map(maps, "decoder_cross", head=3)
    with pytest.raises(ValueError, match="example=-5 is out of range for B=4"):
        select_map(maps, "decoder_cross", example=-5)
    with pytest.raises(ValueError, match="layer=2 is out of range for L=2"):
        select_map(maps, "decoder_cross", layer=2)
    with pytest.raises(TypeError, match=r"layer must be an int, got True \(bool\)"):
        select_map(maps, "decoder_cross", layer=True)
    with pytest.raises(TypeError, match=r"head must be an int or None, got 1.0 \(float\)"):
        select_map(maps, "decoder_cross", head=1.0)


# --- entropy and distance ------------------------------------------------------------------


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
    np.testing.assert_allclose(
        head_entropy(jnp.asarray(weights), base=10), numpy_entropy(weights) / math.log(10),
        rtol=1e-5,
    )


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
    # Rows 1..T-1 each look at keys 0 and 1 equally: mean distance (t - 0 + t - 1) / 2.
    expected = np.mean([(t + abs(t - 1)) / 2 for t in range(1, T)])
    np.testing.assert_allclose(mean_attention_distance(weights, mask), [expected], rtol=1e-6)
    causal = np.asarray(causal_mask(T, S))
    causal_weights = np.where(causal, 1.0, 0.0).astype(np.float32)
    causal_weights /= causal_weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        head_entropy(causal_weights[None], causal),
        [np.mean(np.log(np.arange(1, T + 1)))],
        rtol=1e-6,
    )


def test_a_head_with_no_valid_row_is_nan():
    weights = random_weights((N, T, S), seed=2)
    mask = np.ones((N, T, S), bool)
    mask[1] = False
    entropy = head_entropy(weights, mask)
    assert np.isnan(entropy[1]) and np.isfinite(entropy[[0, 2]]).all()


@pytest.mark.outside_annotations
def test_summary_errors():
    with pytest.raises(
        ValueError,
        match=r"weights must have shape \[\.\.\., N, T, S\].*got "
        r"\[5, 7\]",
    ):
        head_entropy(random_weights((T, S)))
    with pytest.raises(TypeError, match="weights must have a floating dtype"):
        mean_attention_distance(np.ones((N, T, S), np.int32))
    with pytest.raises(ValueError, match=r"base must be in \(1, inf\), got 1.0"):
        head_entropy(random_weights((N, T, S)), base=1)
    with pytest.raises(TypeError, match="base must be a number, got '2'"):
        head_entropy(random_weights((N, T, S)), base="2")
    with pytest.raises(ValueError, match=r"mask of shape \[4\] does not broadcast"):
        mean_attention_distance(random_weights((N, T, S)), np.ones(4, bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        head_entropy(random_weights((N, T, S)), np.ones((T, S)))


# --- alignment accuracy --------------------------------------------------------------------


def one_hot_cross(chosen_LBNT, S_):
    """Cross-attention whose argmax over S is ``chosen``, with small noise elsewhere."""
    noise = random_weights((*chosen_LBNT.shape, S_), seed=9) * 0.1
    return (noise + 0.5 * np.eye(S_, dtype=np.float32)[chosen_LBNT]).astype(np.float32)


def test_alignment_accuracy_on_a_case_worked_by_hand():
    # L=1, B=2, N=2, T=3, S=4. Head 0 picks 0, 1, 2 in sentence 0 and 3, 3, 3 in sentence 1;
    # head 1 the other way round.
    chosen = np.array([[[[0, 1, 2], [3, 3, 3]], [[3, 3, 3], [0, 1, 2]]]])  # [L, B, N, T]
    cross = one_hot_cross(chosen, 4)
    # Scored rows: (0, 0) truth {0}, (0, 1) truth {1, 3}, (1, 0) truth {3}. Row (0, 2) is
    # None, (1, 1) empty, (1, 2) beyond the alignment: not scored.
    alignments = [[[0], [1, 3], None], [[3], []]]
    # Head 0: 0 in {0}, 1 in {1, 3}, 3 in {3}: 3/3. Head 1: 3, 3 in {1, 3}, 0: 1/3.
    np.testing.assert_allclose(alignment_accuracy(cross, alignments), [[1.0, 1 / 3]])
    assert alignment_accuracy(jnp.asarray(cross), alignments).dtype == np.float64


def test_alignment_accuracy_matches_a_python_loop():
    rng = np.random.default_rng(4)
    cross = random_weights((L, B, N, T, S), seed=6)
    alignments = []
    for b in range(B):
        rows = []
        for _ in range(int(rng.integers(1, T + 1))):
            k = int(rng.integers(0, 3))  # 0: an empty row, skipped
            rows.append(None if k == 0 and b % 2 else [int(s) for s in rng.choice(S, k, False)])
        alignments.append(rows)
    hits = [[0] * N for _ in range(L)]
    scored = 0
    for b, rows in enumerate(alignments):
        for t, truth in enumerate(rows):
            if not truth:
                continue
            scored += 1
            for layer in range(L):
                for head in range(N):
                    row = list(cross[layer, b, head, t])
                    hits[layer][head] += row.index(max(row)) in truth
    expected = np.array(hits) / scored
    np.testing.assert_allclose(alignment_accuracy(cross, alignments), expected)
    assert alignment_accuracy(cross, alignments).shape == (L, N)


def test_alignment_accuracy_ties_go_to_the_first_position():
    cross = np.full((1, 1, 1, 2, 3), 1 / 3, np.float32)
    assert alignment_accuracy(cross, [[[0], [1]]]).tolist() == [[0.5]]


def test_alignment_accuracy_replaces_the_notebook_scoring():
    # The hand-written loop of notebook 08 ("Scoring the heads against the true alignment"),
    # on svo_to_sov pairs padded into one batch, against alignment_accuracy + svo_alignment.
    pairs = make_task("svo_to_sov", num_examples=B, seed=2)
    T_ = max(len(t.split()) for _, t in pairs) + 1  # + 1: the end-of-sentence row
    S_ = max(len(s.split()) for s, _ in pairs) + 1
    cross = random_weights((L, B, N, T_, S_), seed=8)
    to_source_word = {t: s for table in SVO_LEXICON.values() for s, t in table.items()}
    hits, total = np.zeros((L, N)), 0
    for b, (source_b, target_b) in enumerate(pairs):
        source_words = source_b.split()
        for t, word in enumerate(target_b.split()):
            if word == "ta":
                continue
            truth = [s for s, w in enumerate(source_words) if w == to_source_word[word]]
            hits += np.isin(cross[:, b, :, t].argmax(axis=-1), truth)
            total += 1
    alignments = [svo_alignment(source, target) for source, target in pairs]
    np.testing.assert_allclose(alignment_accuracy(cross, alignments), hits / total)


def test_alignment_accuracy_errors():
    cross = random_weights((L, B, N, T, S))
    rows = [[[0]] for _ in range(B)]
    with pytest.raises(
        ValueError,
        match=r"cross must have 5 dimensions \[L, B, N, T, S\], got shape \[4, 3, 5, 7\]",
    ):
        alignment_accuracy(cross[0], rows)
    with pytest.raises(TypeError, match="cross must have a floating dtype"):
        alignment_accuracy(np.ones((L, B, N, T, S), np.int32), rows)
    with pytest.raises(TypeError, match="alignments must be a sequence of B=4"):
        alignment_accuracy(cross, {0: [[0]]})
    with pytest.raises(ValueError, match=r"alignments has 3 sentences but cross has B=4"):
        alignment_accuracy(cross, rows[:3])
    with pytest.raises(TypeError, match=r"alignments\[1\] must be a sequence over decoder rows"):
        alignment_accuracy(cross, [[[0]], 5, [[0]], [[0]]])
    with pytest.raises(ValueError, match=r"alignments\[2\] has 6 rows but cross has T=5"):
        alignment_accuracy(cross, [[[0]], [[0]], [[0]] * (T + 1), [[0]]])
    with pytest.raises(
        TypeError, match=r"alignments\[0\]\[1\] must be a sequence of source positions or None"
    ):
        alignment_accuracy(cross, [[[0], 3], *rows[1:]])
    with pytest.raises(ValueError, match=r"alignments\[3\]\[0\]\[1\]=7 is outside .* 0..6"):
        alignment_accuracy(cross, [*rows[:3], [[2, S]]])
    with pytest.raises(ValueError, match=r"alignments\[0\]\[0\]\[0\]=-1 is outside"):
        alignment_accuracy(cross, [[[-1]], *rows[1:]])
    with pytest.raises(TypeError, match=r"alignments\[0\]\[0\]\[0\] must be an int source"):
        alignment_accuracy(cross, [[[1.0]], *rows[1:]])
    with pytest.raises(ValueError, match="alignments has no scored row"):
        alignment_accuracy(cross, [[None, []], [], [None], []])
