"""attention.comprehension: unanswered -> TODO, wrong -> FAIL + hint, right -> PASS + why;
ATTENTION_FILL_ANSWERS=1 fills unanswered questions with the model answer. The notebooks'
own checks of every model answer run in tests/test_notebooks.py."""

import pathlib
import re

import pytest

from attention.comprehension import (
    FILL_ANSWERS_ENV,
    QUESTIONS,
    check,
    evaluate,
    questions_of,
    show_answer,
)
from attention.comprehension.questions import MEASURED

QID = "01.variance_sigma"


def measured_formula(f):
    # Var(q . k) for (d_k, sigma) against the formula d_k sigma^4, written independently here.
    return all(abs(f(d, s) - d * s * s * s * s) < 1e-9 for d, s in [(64, 0.5), (16, 2.0)])


@pytest.fixture(autouse=True)
def _not_filling_in(monkeypatch):
    monkeypatch.delenv(FILL_ANSWERS_ENV, raising=False)


def test_unanswered_value_and_unwritten_formula_are_todo():
    assert evaluate("00.orthogonal_query", None, lambda a: a == 20).status == "TODO"
    outcome = evaluate(QID, lambda d_k, sigma: None, measured_formula)
    assert outcome.status == "TODO" and "still returns None" in outcome.message


def test_wrong_answer_fails_with_the_hint_and_not_the_explanation():
    question = QUESTIONS[QID]
    outcome = evaluate(QID, lambda d_k, sigma: d_k * sigma**2, measured_formula)
    assert outcome.status == "FAIL" and not outcome
    assert question.hint in outcome.message and question.explanation not in outcome.message
    assert str(outcome).startswith(f"[FAIL] {QID}: ")


def test_an_answer_that_breaks_the_test_is_a_failure_not_an_exception():
    outcome = evaluate(QID, lambda d_k, sigma: "sixteen", measured_formula)
    assert outcome.status == "FAIL" and "could not be checked" in outcome.message


def test_right_answer_passes_and_reveals_the_explanation():
    outcome = evaluate(QID, lambda d_k, sigma: d_k * sigma**4, measured_formula)
    assert outcome and outcome.status == "PASS" and not outcome.filled_in
    assert QUESTIONS[QID].explanation in outcome.message
    assert "PASS" in outcome._repr_html_()


def test_filling_in_uses_the_model_answer_only_when_unanswered(monkeypatch):
    monkeypatch.setenv(FILL_ANSWERS_ENV, "1")
    filled = evaluate(QID, lambda d_k, sigma: None, measured_formula)
    assert filled.status == "PASS" and filled.filled_in
    assert evaluate("00.orthogonal_query", None, lambda a: abs(a - 20) < 1e-9).filled_in
    wrong = evaluate(QID, lambda d_k, sigma: d_k, measured_formula)  # answered: kept
    assert wrong.status == "FAIL" and not wrong.filled_in


def test_every_model_answer_is_not_none_and_ids_name_their_notebook():
    assert len(QUESTIONS) >= 20
    for qid, question in QUESTIONS.items():
        assert question.solution is not None and question.hint and question.explanation
        assert qid in questions_of(qid[:2]) and qid[:2].isdigit() and qid[2] == "."
    notebooks = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
    # every course notebook asks at least one question, and every question has its notebook
    assert {qid[:2] for qid in QUESTIONS} == {p.name[:2] for p in notebooks.glob("[0-9][0-9]_*.py")}


def test_check_displays_one_line_and_show_answer_gives_the_formula(capsys):
    assert check("02.last_key", 4, lambda a: a == 4) is None
    assert capsys.readouterr().out.startswith("[PASS] 02.last_key: right.")
    assert "d_k * sigma**4" in show_answer(QID)


@pytest.mark.outside_annotations
def test_bad_arguments():
    with pytest.raises(ValueError, match="not a known question"):
        evaluate("99.nothing", 1, bool)
    with pytest.raises(TypeError, match="question_id must be a str"):
        evaluate(3, 1, bool)
    with pytest.raises(TypeError, match="test must be a function"):
        evaluate(QID, 1, "yes")


# --- a formula must predict what the notebook measured, not call it (issue 32) ---------------

_NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("question_id", sorted(MEASURED))
def test_a_formula_that_calls_the_measurement_fails_and_names_it(question_id):
    for name in MEASURED[question_id]:
        namespace = {name: lambda *args, **kwargs: 1}
        exec("def cheat(*args):\n"  # noqa: S102 - a student's answer, written out
             f"    return {name}(*args) if callable({name}) else {name}\n", namespace)
        outcome = evaluate(question_id, namespace["cheat"], lambda f: True)
        assert outcome.status == "FAIL" and f"your function uses {name}" in str(outcome), name
        # a measurement reached inside a nested function or a lambda counts as well
        exec(f"def nested(*args):\n    return (lambda: {name})()\n", namespace)
        assert evaluate(question_id, namespace["nested"], lambda f: True).status == "FAIL"


@pytest.mark.parametrize("question_id", sorted(MEASURED))
def test_the_measured_names_exist_in_the_notebook_and_the_model_answer_uses_none(question_id):
    from attention.comprehension.checking import _names_used

    (path,) = _NOTEBOOKS_DIR.glob(f"{question_id[:2]}_*.py")
    source = path.read_text(encoding="utf-8")
    assert any(re.search(rf"\b{re.escape(name)}\b", source) for name in MEASURED[question_id])
    solution = QUESTIONS[question_id].solution
    assert callable(solution) and not _names_used(solution) & set(MEASURED[question_id])


# Each answer, as a notebook would leak it (a formula in prose or in code, the sentence that
# settles a multiple choice): none may stand above the question's check, where a student
# reads it before answering (issue 32 found 11.kv_cache_bytes's formula in the prose and
# 12.induction_key's in the measuring code; its re-audit, the sentences below in 01-15).
LEAKS = {
    "01.largest_weight": ["the largest one takes nearly all the weight"],
    "01.variance_sigma": ["d_k * sigma**4", "d_k sigma^4", "d_k * sigma ** 4"],
    "02.finite_negative": ["uniform weights (the convention of"],
    "04.views_self_score": ["every token would mostly look at itself",
                            "no token matches `x_t` better than `x_t` itself"],
    "04.heads_two_relations": ["a linear read-out cannot tell which of the two"],
    "04.params_h8_h1": ["4 * (D*D + D)", "4 * (D * D + D)"],
    "05.before_after": ["and not on its sign", "the product cannot tell"],
    "08.weights_explain": ["it does not say how much that reading changes the output"],
    "09.cached_updates": ["the cached one `L`"],
    "10.flash_flops": ["so it does the same arithmetic", "every score the reference computes"],
    "15.clustered_recall": ["On random vectors the index is little use"],
    "06.ffn_params": ["2 D F + F + D", "2 * d_model * d_ff"],
    "07.smoothed_right": ["(1 - EPS) * jax.nn.one_hot"],
    "09.uncached_updates": ["L (L + 1) / 2", "L * (L + 1) / 2", "L(L+1)/2", "1 + 2 + ... + L"],
    "10.weights_mib": ["N * T * T / 2**20", "4 * N * T * T"],
    "11.kv_cache_bytes": ["2 * layers", "2 * 80 * 4096", "2 * config.num_layers"],
    "12.uniform_weight": ["1 / (t + 1)", "1.0 / (q + 1)", "1.0 / (second + 1)"],
    "12.induction_key": ["t - L + 1", "second - L_TEST + 1", "q - length + 1", "L - 1 below"],
    "13.gpt2_parameters": ["12 D^2", "12 * D * D", "12 * d_model"],
    "14.mla_cache": ["(latent_dim + rope_head_dim) *", "(C + R) * layers"],
    "14.linear_state": ["head_dim * head_dim + head_dim", "H^2 + H", "H * H + H"],
}


@pytest.mark.parametrize("question_id", sorted(LEAKS))
def test_no_formula_stands_in_view_above_its_check(question_id):
    (path,) = _NOTEBOOKS_DIR.glob(f"{question_id[:2]}_*.py")
    source = path.read_text(encoding="utf-8")
    above = source[: source.index(f'check("{question_id}"')]
    # whitespace and the `#` that opens each line of prose (and of a comment) left out, so
    # that a sentence broken over lines is found
    squeeze = lambda text: re.sub(r"\s+", "", re.sub(r"\n\s*#", "\n", text))  # noqa: E731
    leaked = [leak for leak in LEAKS[question_id] if squeeze(leak) in squeeze(above)]
    assert not leaked, f"{path.name} shows {leaked} above the check of {question_id}"
