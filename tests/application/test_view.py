"""``attention view`` (attention/application/view.py) end to end on a tiny trained run.

The page it writes is opened in headless Chromium: it must hold the model's own weights for
the sentence (compared with ``pair_attention`` computed here), label its axes with the run's
tokens, and raise no console error. Bad arguments end in one line and exit status 2.
"""

import numpy as np
import pytest

from attention.application.cli import main
from attention.application.runs import load_run, new_run, save_run
from attention.application.translation import pair_attention
from attention.data import task_vocabulary
from attention.model.config import TransformerConfig
from attention.training.train import TrainConfig
from tests._browser import ConsoleErrors, chromium

SENTENCE = "a b c d"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # An untrained run saved as training saves one: the view reads whatever weights it has,
    # and skipping training keeps this file fast. Two layers of four heads.
    tokenizer = task_vocabulary("copy")
    config = TransformerConfig.tiny(vocab_size=tokenizer.vocab_size, d_model=16, d_ff=32,
                                    num_layers=2)
    run = new_run(config, TrainConfig(steps=1, batch_size=4, warmup_steps=1), tokenizer,
                  data="copy")
    out = tmp_path_factory.mktemp("view") / "run"
    save_run(run, out)
    return out


def test_view_writes_the_models_attention_and_it_opens_in_a_browser(run_dir, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "view.html"
    assert main(["view", "--checkpoint", str(run_dir), SENTENCE, "--out", str(out),
                 "--target", "a b c d"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "translation: a b c d" in printed

    run = load_run(run_dir)
    pair = pair_attention(run.model, run.tokenizer, [(SENTENCE, "a b c d")])
    cross_LNTS = pair["attention_maps"]["decoder_cross"][:, 0]
    with chromium() as browser:
        page = browser.new_page()
        errors = ConsoleErrors(page)
        page.goto(out.as_uri())
        assert page.inner_text(".av-title") == "a b c d \u2192 a b c d"
        names = page.eval_on_selector_all("button.av-section", "bs => bs.map(b => b.textContent)")
        assert names == ["encoder self-attention", "decoder self-attention", "cross-attention"]
        page.click("button.av-section[data-section='2']")
        labels = page.eval_on_selector_all(".av-token[data-side=key] .av-label",
                                           "ls => ls.map(l => l.textContent)")
        assert labels == pair["source_tokens"]
        # the last layer's head 0, query 1: the page's lines are the model's weights
        last = cross_LNTS.shape[0] - 1
        page.select_option("select.av-layer", str(last))
        page.dblclick("button.av-head[data-head='0']")
        page.hover(".av-token[data-side=query][data-index='1']")
        lines = page.eval_on_selector_all(
            "line.av-line",
            "ls => ls.map(l => [+l.dataset.key, +l.getAttribute('stroke-opacity')])")
        levels = np.rint(cross_LNTS[last, 0, 1] * 255)
        assert {k for k, _ in lines} == set(np.flatnonzero(levels >= 1).tolist())
        for k, opacity in lines:
            assert abs(opacity - levels[k] / 255) < 1e-3
        assert errors == []


def test_view_of_the_models_own_translation_opens_on_the_model_view(run_dir, tmp_path, capsys):
    out = tmp_path / "model.html"
    assert main(["view", "--checkpoint", str(run_dir), SENTENCE, "--out", str(out),
                 "--view", "model"]) == 0
    assert '"view":"model"' in out.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "{missing}", SENTENCE], "missing"),
    (["--checkpoint", "{run}", "  "], "sentence is empty"),
    (["--checkpoint", "{run}", SENTENCE, "--out", "{missing}/v.html"], "does not exist"),
    (["--checkpoint", "{run}", SENTENCE, "--beam-size", "0"], "--beam-size must be"),
])
def test_errors_are_one_line_with_status_2(run_dir, tmp_path, capsys, argv, message):
    argv = [a.format(run=run_dir, missing=tmp_path / "missing") for a in argv]
    capsys.readouterr()
    assert main(["view", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("attention view: error:"), err
    assert message in err
