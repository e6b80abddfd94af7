"""Packed language-model batches: layout, every token once in evaluation, seeded epochs."""

import numpy as np
import pytest

from attention.data.packing import PackedBatcher, pack

SEQUENCES = [[4 + (i * 7 + j) % 30 for j in range(3 + i % 5)] for i in range(40)]


def test_pack_wraps_each_sequence_in_bos_and_eos():
    stream = pack(SEQUENCES)
    expected = [t for seq in SEQUENCES for t in (1, *seq, 2)]
    assert stream.tolist() == expected and stream.dtype == np.int32


def test_evaluation_windows_score_every_token_once_and_shift_by_one():
    T = 7
    batcher = PackedBatcher(SEQUENCES, seq_len=T, batch_size=3, shuffle=False,
                            drop_remainder=False)
    stream = pack(SEQUENCES)
    inputs = np.concatenate([b["tgt_in"] for b in batcher.epoch(0)]).reshape(-1)
    targets = np.concatenate([b["tgt_out"] for b in batcher.epoch(0)]).reshape(-1)
    n = len(stream) - 1
    np.testing.assert_array_equal(inputs[:n], stream[:-1])
    expected = np.where(stream[1:] == 1, 0, stream[1:])  # <s> is never a target
    np.testing.assert_array_equal(targets[:n], expected)
    assert np.all(targets[n:] == 0)
    assert batcher.num_tokens == int(np.sum(stream[1:] != 1))


def test_training_epochs_are_seeded_shifted_and_resumable():
    batcher = PackedBatcher(SEQUENCES, seq_len=5, batch_size=4, seed=3)
    first = list(batcher.epoch(0))
    assert all(b["tgt_in"].shape == (4, 5) for b in first) and len(first) == len(batcher)
    again = list(PackedBatcher(SEQUENCES, seq_len=5, batch_size=4, seed=3).epoch(0))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["tgt_in"], b["tgt_in"])
    resumed = list(batcher.epoch(0, start_step=2))
    np.testing.assert_array_equal(resumed[0]["tgt_out"], first[2]["tgt_out"])
    other = list(batcher.epoch(1))
    assert not all(np.array_equal(a["tgt_in"], b["tgt_in"])
                   for a, b in zip(first, other, strict=True))
    # every window is a contiguous slice of the stream, its targets the next tokens
    stream = pack(SEQUENCES).tolist()
    text = "," + ",".join(map(str, stream)) + ","
    for row in first[0]["tgt_in"]:
        assert "," + ",".join(map(str, row.tolist())) + "," in text


@pytest.mark.outside_annotations
def test_bad_input():
    with pytest.raises(ValueError, match="sequence 1 holds id 2"):
        pack([[4, 5], [6, 2]])
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        PackedBatcher(SEQUENCES, seq_len=0, batch_size=2)
    with pytest.raises(TypeError, match="batch_size must be a positive int"):
        PackedBatcher(SEQUENCES, seq_len=4, batch_size=2.0)
