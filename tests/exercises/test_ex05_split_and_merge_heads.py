"""Exercise 05's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex05_split_and_merge_heads.py)."""



from attention import exercises
from teachers import solutions

from ._helpers import fails


def test_split_merge_heads_mistakes():
    check = exercises.check_split_merge_heads

    def strided(x, n):
        return x.reshape(*x.shape[:-1], x.shape[-1] // n, n).swapaxes(-1, -2)

    fails(check(strided, solutions.merge_heads), "split along the wrong axis", "every N-th")

    def heads_first(x, n):
        B, T, D = x.shape
        return x.reshape(B, n, T, D // n)

    fails(check(heads_first, solutions.merge_heads), "axes 1 and 2 look swapped")

    def mixes_positions(x, n):
        B, T, D = x.shape
        return x.reshape(B, n, T, D // n).transpose(0, 2, 1, 3)

    fails(check(mixes_positions, solutions.merge_heads), "mixes positions")
    interleave = lambda x: x.swapaxes(-1, -2).reshape(*x.shape[:-2], -1)
    fails(check(solutions.split_heads, interleave), "interleaves the heads")
