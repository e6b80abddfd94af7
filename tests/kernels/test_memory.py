"""Memory grows linearly in T for flash attention, quadratically for the reference.

Measured, not timed: XLA reports the temporary memory a compiled program needs
(``memory_analysis().temp_size_in_bytes``). We compile each function at T and 2T and compare.
"""

import jax
import jax.numpy as jnp
import pytest

from attention import dot_product_attention
from attention.kernels import blockwise_attention, flash_attention

N, H, BLOCK = 2, 16, 128
T_SHORT, T_LONG = 1024, 2048  # large enough that the T x T scores dominate the reference
# Doubling T doubles a linear term and quadruples a quadratic one. Constant terms (one tile of
# scores) only lower the ratio, so "linear" is ratio <= 2.5 and "quadratic" is ratio >= 3.5.
LINEAR_MAX_RATIO = 2.5
QUADRATIC_MIN_RATIO = 3.5


def _temp_bytes(f, T, backward):
    x = jax.ShapeDtypeStruct((1, T, N, H), jnp.float32)
    if backward:
        g = jax.grad(lambda q, k, v: f(q, k, v).sum(), argnums=(0, 1, 2))
    else:
        g = f
    analysis = jax.jit(g).lower(x, x, x).compile().memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    return analysis.temp_size_in_bytes


def _ratio(f, backward):
    return _temp_bytes(f, T_LONG, backward) / max(_temp_bytes(f, T_SHORT, backward), 1)


flash = lambda q, k, v: flash_attention(q, k, v, is_causal=True, block_q=BLOCK, block_k=BLOCK)
blockwise = lambda q, k, v: blockwise_attention(q, k, v, is_causal=True, block_k=BLOCK)
reference = lambda q, k, v: dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward+backward"])
def test_flash_memory_is_linear(backward):
    assert _ratio(flash, backward) <= LINEAR_MAX_RATIO


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward+backward"])
def test_reference_memory_is_quadratic(backward):
    assert _ratio(reference, backward) >= QUADRATIC_MIN_RATIO


def test_blockwise_is_linear_forward_but_quadratic_to_train():
    """Why flash needs its custom backward: autodiff through the scan stores every block."""
    assert _ratio(blockwise, backward=False) <= LINEAR_MAX_RATIO
    assert _ratio(blockwise, backward=True) >= QUADRATIC_MIN_RATIO


def test_flash_uses_far_less_memory_than_the_reference():
    for backward in (False, True):
        ours = _temp_bytes(flash, T_LONG, backward)
        theirs = _temp_bytes(reference, T_LONG, backward)
        assert ours * 8 < theirs, (backward, ours, theirs)
