import math

import numpy as np
import optax
import pytest

from attention.training.schedule import transformer_schedule


@pytest.mark.parametrize("d_model, warmup", [(512, 4000), (64, 7), (128, 300)])
def test_schedule_matches_paper_formula(d_model, warmup):
    schedule = transformer_schedule(d_model, warmup)
    for step in [1, 2, warmup // 2 + 1, warmup, warmup + 1, 3 * warmup, 50 * warmup]:
        expected = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)  # section 5.3
        # Optax counts updates from 0: update `step - 1` is the paper's step `step`.
        np.testing.assert_allclose(float(schedule(step - 1)), expected, rtol=1e-6)


def test_schedule_peaks_at_warmup_and_scales():
    d_model, warmup = 256, 50
    rates = np.array([float(transformer_schedule(d_model, warmup)(c)) for c in range(200)])
    assert int(np.argmax(rates)) + 1 == warmup
    np.testing.assert_allclose(rates.max(), (d_model * warmup) ** -0.5, rtol=1e-6)
    doubled = transformer_schedule(d_model, warmup, scale=2.0)
    np.testing.assert_allclose(float(doubled(10)), 2 * rates[10], rtol=1e-6)


def test_schedule_drives_adam_step_sizes():
    # The schedule is a real optax schedule: Adam's first update has size lr(0) per coordinate.
    schedule = transformer_schedule(64, 10)
    tx = optax.adam(schedule, b1=0.9, b2=0.98, eps=1e-9)
    params = np.zeros(3, np.float32)
    updates, _ = tx.update(np.ones(3, np.float32), tx.init(params), params)
    np.testing.assert_allclose(np.abs(updates), float(schedule(0)), rtol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(d_model=0), r"d_model must be a positive int, got 0\."),
    (dict(d_model=8, warmup_steps=-1), r"warmup_steps must be a positive int, got -1\."),
    (dict(d_model=8, scale=0.0), r"scale must be in \(0, inf\), got 0.0"),
])
def test_schedule_rejects_non_positive(kwargs, message):
    with pytest.raises(ValueError, match=message):
        transformer_schedule(**kwargs)


@pytest.mark.outside_annotations
@pytest.mark.parametrize("kwargs, message", [
    (dict(d_model=512.0), r"d_model must be a positive int, got 512.0 \(float\)"),
    (dict(d_model=8, warmup_steps=True), r"warmup_steps must be a positive int, got True"),
    (dict(d_model=8, scale="2"), r"scale must be a number, got '2' \(str\)"),
])
def test_schedule_rejects_wrong_types(kwargs, message):
    with pytest.raises(TypeError, match=message):
        transformer_schedule(**kwargs)


def test_doctest_peak_value():
    assert math.isclose(float(transformer_schedule(512, 4000)(3999)), (512 * 4000) ** -0.5,
                        rel_tol=1e-6)
