"""Exercise 15's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex15_encoder_layer.py)."""

from attention import exercises
from teachers import solutions

from ._helpers import fails


def _layer(*, pre_post_swapped=False, residual=(True, True), ignore_mask=False,
           eval_dropout=False, no_dropout=False, drop_after_add=False, final_norm=False,
           add_normalised=False):
    def encoder_layer(x, src_mask, layer, norm_first=False, deterministic=True):
        pre = (not norm_first) if pre_post_swapped else norm_first
        mask = None if ignore_mask else src_mask
        drop = not (deterministic and not eval_dropout)
        blocks = [(lambda h: layer.self_attention(h, mask), layer.norm1, residual[0]),
                  (layer.feed_forward, layer.norm2, residual[1])]
        for sublayer, norm, keep in blocks:
            inputs = norm(x) if pre else x
            y = sublayer(inputs)
            base = (inputs if add_normalised else x) if keep else 0.0
            if no_dropout:
                x = base + y
            elif drop_after_add:
                x = layer.dropout(base + y, not drop)
            else:
                x = base + layer.dropout(y, not drop)
            x = x if pre else norm(x)
        return layer.norm2(x) if final_norm else x

    return encoder_layer


def test_encoder_layer_mistakes():
    check = exercises.check_encoder_layer
    assert check(_layer()).passed
    assert check(solutions.encoder_layer).passed
    fails(check(_layer(pre_post_swapped=True)), "(pre-LN) although norm_first=False")
    fails(check(_layer(residual=(False, False))), "missing around both sub-layers")
    fails(check(_layer(residual=(False, True))), "around self-attention is missing")
    fails(check(_layer(ignore_mask=True)), "you ignored src_mask")
    fails(check(_layer(eval_dropout=True)), "with deterministic=True", "dropout is still on")
    fails(check(_layer(no_dropout=True)), "residual dropout is never applied")
    fails(check(_layer(drop_after_add=True)), "dropout after the residual add")
    fails(check(_layer(final_norm=True)), "normalised the layer's output")
    fails(check(_layer(add_normalised=True)), "added the normalised input back")
