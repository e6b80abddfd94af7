"""Bucketed batches: coverage, padding layout, bucketing, determinism, resume, limits."""

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
