"""Exercise 06's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex06_multi_head_attention.py)."""



from attention import exercises

from ._helpers import fails, mha_variant


def test_multi_head_attention_mistakes():
    check = exercises.check_multi_head_attention
    assert check(mha_variant()).passed
    fails(check(mha_variant(strided=True)), "split along the wrong axis")
    fails(check(mha_variant(scale_by=112)), "1/sqrt(d_model) = 1/sqrt(112)", "sqrt(16)")
    fails(check(mha_variant(project=False)), "forgot the output projection")

    def ignores_mask(x, w_q, w_k, w_v, w_o, num_heads, mask=None):
        return mha_variant()(x, w_q, w_k, w_v, w_o, num_heads)

    fails(check(ignores_mask), "you ignored the mask")
