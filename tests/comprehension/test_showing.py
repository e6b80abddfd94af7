"""show_code: a function's body as the package runs it, without docstring and checks."""

import functools
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import attention.mechanism.scaled_dot_product as sdp
from attention.comprehension.showing import code_of, show_code
from attention.mechanism.multi_head import MultiHeadAttention


def check_positive(name, value):  # a check, as attention._checks writes them
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


@functools.lru_cache  # a decorator is not part of the step
def _example(x, n=2):
    """A docstring that the reader of the computation does not need.

    It spans lines.
    """
    check_positive("n", n)
    if n > 10:
        raise ValueError("n too large")
    n = check_positive("n", n)
    total = 0
    for i in range(n):
        # a comment says why, and stays
        if i:
            check_positive("i", i)
        total += x * i
    return total


EXPECTED = '''\
def _example(x, n=2):
    n = check_positive(...)  # the arguments, checked
    total = 0
    for i in range(n):
        # a comment says why, and stays
        if i:
            check_positive("i", i)
        total += x * i
    return total
'''


def test_docstring_checks_and_decorators_are_left_out_and_the_rest_kept_verbatim():
    assert code_of(_example.__wrapped__) == EXPECTED


def test_what_is_shown_computes_what_the_package_computes():
    # single_head_attention's only check is a bare call: its shown body runs as it is.
    namespace = dict(vars(sdp))
    exec(code_of(sdp.single_head_attention), namespace)
    shown = namespace["single_head_attention"]
    q, k, v = (jax.random.normal(jax.random.key(i), shape)
               for i, shape in enumerate([(3, 4), (5, 4), (5, 7)]))
    mask = jnp.arange(5)[None, :] <= jnp.arange(3)[:, None] + 1
    np.testing.assert_array_equal(shown(q, k, v, mask), sdp.single_head_attention(q, k, v, mask))
    assert "check_single_head" not in code_of(sdp.single_head_attention)


def test_a_method_shows_its_body_and_a_bound_method_the_same():
    code = code_of(MultiHeadAttention.__call__)
    assert code.startswith("def __call__(\n") and "check_multi_head_inputs" not in code
    assert "return self.project_out(inputs_q, output_BTNH)" in code
    assert '"""' not in code
    from flax import nnx
    mha = MultiHeadAttention(num_heads=2, in_features=4, rngs=nnx.Rngs(0))
    assert code_of(mha.__call__) == code


def test_in_a_notebook_it_is_highlighted_html_and_elsewhere_plain_text():
    shown = show_code(sdp.single_head_attention)
    assert str(shown) == code_of(sdp.single_head_attention)
    assert repr(shown).startswith(
        "# attention.mechanism.scaled_dot_product.single_head_attention\n")
    html = shown._repr_html_()
    assert "<b>attention.mechanism.scaled_dot_product.single_head_attention</b>" in html
    assert 'style="color:' in html  # colours inline: no style sheet needed on the site
    assert "single_head_attention" in html and "<script" not in html


@pytest.mark.outside_annotations
@pytest.mark.parametrize("thing", [MultiHeadAttention, len, functools.partial(_example, 1),
                                   jax.jit(lambda x: x), "masked_softmax"])
def test_what_is_not_a_python_function_is_named(thing):
    with pytest.raises(TypeError, match="show_code takes a function or method defined with"):
        show_code(thing)


def test_a_jit_compiled_function_shows_the_function_it_compiles():
    from attention.training.train import _loss_fn, train_step  # nnx.jit

    assert code_of(train_step).startswith("def train_step(")
    assert code_of(jax.jit(_loss_fn)) == code_of(_loss_fn)


def test_a_function_defined_on_one_line_and_nested_ones_are_shown_whole():
    def outer(x):
        def inner(y):
            return y + 1
        return inner(x)

    assert code_of(outer) == textwrap.dedent('''\
        def outer(x):
            def inner(y):
                return y + 1
            return inner(x)
        ''')
