"""Bucketed batches: coverage, padding layout, bucketing, determinism, resume, limits."""

import itertools

import numpy as np
import pytest

from attention.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Batcher,
    encode_pairs,
    make_batches,
    make_task,
    task_vocabulary,
)
from attention.data.batching import fewest_padding_lengths


@pytest.fixture(scope="module")
def examples():
    # Lengths spread over several buckets; source and target lengths differ (reverse of a
    # copy of different lengths would not), so a swapped side shows up.
    rng = np.random.default_rng(0)
    out = []
    for _ in range(203):
        n, m = rng.integers(1, 30), rng.integers(1, 23)
        out.append((list(rng.integers(4, 50, n)), list(rng.integers(4, 50, m))))
    return out


def _flatten(batches):
    return np.concatenate([b["index"] for b in batches])


def test_every_example_exactly_once_per_epoch(examples):
    batcher = Batcher(examples, batch_size=16, seed=3)
    for epoch in (0, 1):
        batches = list(batcher.epoch(epoch))
        assert len(batches) == len(batcher)
        assert sorted(_flatten(batches).tolist()) == list(range(len(examples)))


def test_padding_layout(examples):
    for batch in make_batches(examples, batch_size=7, seed=1):
        for key in ("src", "tgt_in", "tgt_out", "src_lengths", "tgt_lengths"):
            assert batch[key].dtype == np.int32
        B, L = batch["src"].shape
        assert batch["tgt_in"].shape == batch["tgt_out"].shape == (B, L)
        for row, i in enumerate(batch["index"]):
            src, tgt = examples[i]
            n, m = len(src), len(tgt)
            assert batch["src"][row].tolist() == [*src, EOS_ID] + [PAD_ID] * (L - n - 1)
            assert batch["tgt_in"][row].tolist() == [BOS_ID, *tgt] + [PAD_ID] * (L - m - 1)
            assert batch["tgt_out"][row].tolist() == [*tgt, EOS_ID] + [PAD_ID] * (L - m - 1)
            assert (batch["src_lengths"][row], batch["tgt_lengths"][row]) == (n + 1, m + 1)


def test_bucketing_keeps_padding_small_and_shapes_few(examples):
    batcher = Batcher(examples, batch_size=8, seed=0)
    shapes = set()
    for batch in batcher.epoch(0):
        B, L = batch["src"].shape
        shapes.add((B, L))
        assert L % 8 == 0
        longest = np.maximum(batch["src_lengths"], batch["tgt_lengths"])
        assert np.all((longest > L - 8) & (longest <= L))  # every row is in bucket L
    assert {L for _, L in shapes} == set(batcher.bucket_lengths) == {8, 16, 24, 32}
    assert len(shapes) <= 2 * len(batcher.bucket_lengths)


def test_drop_remainder_gives_one_shape_per_bucket(examples):
    batcher = Batcher(examples, batch_size=8, drop_remainder=True, seed=0)
    batches = list(batcher.epoch(0))
    assert {b["src"].shape for b in batches} == {(8, L) for L in batcher.bucket_lengths}
    assert len(_flatten(batches)) == len(set(_flatten(batches).tolist())) == 8 * len(batches)


def test_token_budget(examples):
    batcher = Batcher(examples, batch_tokens=100, seed=0)
    assert [batcher.rows(L) for L in batcher.bucket_lengths] == [12, 6, 4, 3]
    for batch in batcher.epoch(0):
        assert batch["src"].size <= 100
    assert Batcher(examples, batch_tokens=10).rows(32) == 1  # at least one row


def test_deterministic_given_seed_and_epoch(examples):
    def order(seed, epoch):
        return _flatten(Batcher(examples, batch_size=8, seed=seed).epoch(epoch)).tolist()

    assert order(5, 2) == order(5, 2)
    assert order(5, 2) != order(6, 2)
    assert order(5, 2) != order(5, 3)


def test_resume_reproduces_the_rest_of_the_epoch(examples):
    batcher = Batcher(examples, batch_size=8, seed=9)
    full = list(batcher.epoch(4))
    for step in (0, 5, len(full)):
        resumed = list(Batcher(examples, batch_size=8, seed=9).epoch(4, start_step=step))
        assert len(resumed) == len(full) - step
        for a, b in zip(resumed, full[step:], strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(
        ValueError, match=rf"start_step must be in 0..{len(full)} .* got {len(full) + 1}"
    ):
        batcher.epoch(4, start_step=len(full) + 1)


def test_without_shuffle_buckets_come_in_order(examples):
    batches = list(make_batches(examples, batch_size=8, shuffle=False))
    lengths = [b["src"].shape[1] for b in batches]
    assert lengths == sorted(lengths)
    assert all(np.all(np.diff(b["index"]) > 0) for b in batches)  # given order inside a bucket


def test_max_len_drop_and_truncate(examples):
    too_long = sum(len(s) + 1 > 16 or len(t) + 1 > 16 for s, t in examples)
    dropped = Batcher(examples, batch_size=8, max_len=16)
    assert (dropped.num_dropped, dropped.num_truncated) == (too_long, 0)
    assert dropped.num_examples == len(examples) - too_long
    assert max(b["src"].shape[1] for b in dropped.epoch(0)) == 16
    # A max_len that is no multiple of 8 caps the padded length too (a position table of 13).
    capped = Batcher(examples, batch_size=8, max_len=13)
    assert capped.bucket_lengths == [8, 13]
    assert max(b["src"].shape[1] for b in capped.epoch(0)) == 13

    cut = Batcher(examples, batch_size=8, max_len=16, overflow="truncate")
    assert (cut.num_dropped, cut.num_truncated, cut.num_examples) == (0, too_long, len(examples))
    for batch in cut.epoch(0):
        assert batch["src_lengths"].max() <= 16 and batch["tgt_lengths"].max() <= 16
        for row, i in enumerate(batch["index"]):
            src, tgt = examples[i]
            n = batch["src_lengths"][row] - 1
            m = batch["tgt_lengths"][row] - 1
            assert batch["src"][row, : n + 1].tolist() == [*src[:15], EOS_ID]
            assert batch["tgt_out"][row, : m + 1].tolist() == [*tgt[:15], EOS_ID]


def test_with_a_real_tokenizer_on_a_task():
    pairs = make_task("reverse", num_examples=50, seed=0)
    vocab = task_vocabulary("reverse")
    batch = next(make_batches(encode_pairs(pairs, vocab), batch_size=50, shuffle=False))
    for row, i in enumerate(batch["index"]):
        source, target = pairs[i]
        assert vocab.decode(batch["src"][row]) == source
        assert vocab.decode(batch["tgt_out"][row]) == target
        assert vocab.decode(batch["tgt_in"][row]) == target  # <s> is skipped


@pytest.mark.outside_annotations
def test_argument_errors(examples):
    with pytest.raises(ValueError, match="exactly one of batch_size and batch_tokens"):
        Batcher(examples, batch_size=8, batch_tokens=100)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        Batcher(examples, batch_size=0)
    with pytest.raises(ValueError, match="overflow must be one of .* got 'wrap'"):
        Batcher(examples, batch_size=8, max_len=8, overflow="wrap")
    with pytest.raises(ValueError, match=r"examples\[1\] target holds the id 2; .*must not be"):
        Batcher([([5], [6]), ([5], [6, EOS_ID])], batch_size=2)
    with pytest.raises(ValueError, match=r"examples\[0\] source must be a flat sequence"):
        Batcher([([[5]], [6])], batch_size=2)
    with pytest.raises(ValueError, match=r"epoch must be a non-negative int, got -1\."):
        Batcher(examples, batch_size=8).epoch(-1)
    with pytest.raises(ValueError, match=r"examples\[0\] source must be a flat sequence.*2 dim"):
        Batcher([([[5, 6]], [6])], batch_size=2)


@pytest.mark.outside_annotations
@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=True), r"batch_size must be a positive int, got True \(bool\)"),
    (dict(batch_size=8.0), r"batch_size must be a positive int, got 8.0 \(float\)"),
    (dict(batch_tokens="100"), r"batch_tokens must be a positive int, got '100' \(str\)"),
    (dict(batch_size=8, pad_to_multiple=None), r"pad_to_multiple must be a positive int"),
    (dict(batch_size=8, max_len=16.0), r"max_len must be a positive int, got 16.0"),
    (dict(batch_size=8, seed=1.0), r"seed must be a non-negative int, got 1.0 \(float\)"),
])
def test_argument_type_errors(examples, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Batcher(examples, **kwargs)


@pytest.mark.outside_annotations
def test_wrong_types_in_epoch_and_examples(examples):
    batcher = Batcher(examples, batch_size=8)
    with pytest.raises(TypeError, match=r"epoch must be a non-negative int, got True \(bool\)"):
        batcher.epoch(True)
    with pytest.raises(TypeError, match=r"start_step must be an int, got 1.0 \(float\)"):
        batcher.epoch(0, start_step=1.0)
    with pytest.raises(TypeError, match=r"examples\[0\] target must be a flat sequence of int "
                                        r"ids, got dtype float64"):
        Batcher([([5], [6.0, 7.0])], batch_size=2)


@pytest.mark.outside_annotations
def test_numpy_ints_are_accepted(examples):
    plain = Batcher(examples, batch_size=8, seed=3)
    numpy = Batcher(examples, batch_size=np.int64(8), seed=np.int32(3))
    assert numpy.batch_size == 8 and type(numpy.batch_size) is int
    first, again = next(plain.epoch(np.int64(1))), next(numpy.epoch(1))
    np.testing.assert_array_equal(first["src"], again["src"])


# --- fewer shapes: num_buckets and pad_remainder ---------------------------------------------


def _least_padding_brute_force(padded, k):
    """The least total padded length with at most k of the values, trying every choice."""
    values = sorted(set(padded))
    best = None
    for r in range(k):
        for others in itertools.combinations(values[:-1], r):
            chosen = np.array([*others, values[-1]])
            cost = int(chosen[np.searchsorted(chosen, padded)].sum())
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fewest_padding_lengths_pads_least(examples, k):
    lengths = [max(len(s) + 1, len(t) + 1) for s, t in examples]  # exact: pad_to_multiple=1
    assert fewest_padding_lengths(lengths, 99) == sorted(set(lengths))  # room for all: all
    chosen = fewest_padding_lengths(lengths, k)
    assert len(chosen) <= k and chosen == sorted(set(chosen)) and chosen[-1] == max(lengths)
    assert set(chosen) <= set(lengths)
    padded = np.array(chosen)[np.searchsorted(chosen, lengths)]
    assert np.all(padded >= lengths)
    assert int(padded.sum()) == _least_padding_brute_force(lengths, k)


@pytest.mark.parametrize("num_buckets", [1, 2, 3])
@pytest.mark.parametrize("max_len", [None, 21])
def test_num_buckets_with_pad_remainder_gives_at_most_that_many_shapes(
    examples, num_buckets, max_len
):
    batcher = Batcher(examples, batch_tokens=150, num_buckets=num_buckets, pad_remainder=True,
                      max_len=max_len, overflow="truncate", pad_to_multiple=4, seed=2)
    assert len(batcher.bucket_lengths) == num_buckets  # more than that many lengths exist
    for epoch in (0, 1):
        batches = list(batcher.epoch(epoch))
        shapes = {b["src"].shape for b in batches}
        assert shapes == {(batcher.rows(L), L) for L in batcher.bucket_lengths}
        indices = _flatten(batches)
        assert sorted(indices[indices >= 0].tolist()) == list(range(len(examples)))
        for batch in batches:
            B, L = batch["src"].shape
            assert max_len is None or L <= max_len
            assert L in batcher.bucket_lengths and (L % 4 == 0 or L == max_len)
            real = batch["index"] >= 0
            for row in np.flatnonzero(real):  # padding never cuts an example
                src, tgt = examples[batch["index"][row]]
                n = min(len(src), (max_len or L) - 1)  # truncated to max_len, not to L
                m = min(len(tgt), (max_len or L) - 1)
                assert batch["src"][row].tolist() == [*src[:n], EOS_ID] + [PAD_ID] * (L - n - 1)
                assert batch["tgt_out"][row].tolist() == [*tgt[:m], EOS_ID] + [PAD_ID] * (L - m - 1)
            for key in ("src", "tgt_in", "tgt_out"):  # empty rows: all <pad>, length 0
                assert np.all(batch[key][~real] == PAD_ID)
            assert not np.any(batch["src_lengths"][~real])
            assert not np.any(batch["tgt_lengths"][~real])


def test_num_buckets_alone_keeps_the_remainders_and_default_is_unchanged(examples):
    default = Batcher(examples, batch_size=8, seed=4)
    assert default.bucket_lengths == [8, 16, 24, 32]
    many = Batcher(examples, batch_size=8, num_buckets=len(default.bucket_lengths), seed=4)
    for a, b in zip(many.epoch(1), default.epoch(1), strict=True):  # enough buckets: today's
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    few = Batcher(examples, batch_size=8, num_buckets=2, seed=4)
    lengths = [max(len(s) + 1, len(t) + 1) for s, t in examples]
    padded = [-(-n // 8) * 8 for n in lengths]
    assert few.bucket_lengths == fewest_padding_lengths(padded, 2)
    batches = list(few.epoch(0))
    assert {b["src"].shape[0] for b in batches} > {8}  # smaller last batches, no empty rows
    assert np.all(_flatten(batches) >= 0)


def test_resume_with_num_buckets_and_pad_remainder(examples):
    def batcher():
        return Batcher(examples, batch_size=16, num_buckets=2, pad_remainder=True, seed=7)

    full = list(batcher().epoch(3))
    for a, b in zip(batcher().epoch(3, start_step=4), full[4:], strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.outside_annotations
def test_bucket_argument_errors(examples):
    with pytest.raises(ValueError, match=r"num_buckets must be a positive int, got 0"):
        Batcher(examples, batch_size=8, num_buckets=0)
    with pytest.raises(TypeError, match=r"num_buckets must be a positive int, got 2.0 \(float"):
        Batcher(examples, batch_size=8, num_buckets=2.0)
    with pytest.raises(ValueError, match="at most one of drop_remainder and pad_remainder"):
        Batcher(examples, batch_size=8, drop_remainder=True, pad_remainder=True)
