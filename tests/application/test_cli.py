"""The command line end to end, on a tiny setting: train, resume, translate, evaluate, errors."""

import json
import re
import subprocess
import sys

import pytest

from attention.application.cli import _build_parser, _model_config, _train_config, main

TINY = ["--data", "copy", "--examples", "300", "--batch-size", "16", "--eval-sentences", "4",
        "--no-progress", "--checkpoint-every", "5"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--steps", "6", "--out", str(out)]) == 0
    return out


def test_train_writes_everything_a_user_needs(run_dir, capsys):
    for name in ("config.json", "tokenizer.json", "metrics.jsonl", "training_curves.png",
                 "cross_attention.png"):
        assert (run_dir / name).is_file(), name
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == [5, 6]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"] == "copy" and config["train"]["steps"] == 6
    assert (run_dir / "cross_attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_from_the_last_checkpoint(run_dir, capsys):
    assert main(["train", *TINY, "--steps", "8", "--resume", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "resumed from step 6" in out
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # A line every log_every=20 steps and at the last step; each session ends with its times.
    assert [line["step"] for line in lines if "loss" in line] == [6, 8]
    sessions = [line for line in lines if "loss" not in line]
    assert [line["step"] for line in sessions] == [6, 8]
    for line in sessions:
        assert 0.0 < line["compile_seconds"] < line["training_seconds"]
    # The command's own time, and the part of it spent compiling (training and translating).
    match = re.search(r"time: ([\d.]+) s, of which ([\d.]+) s compiling", out)
    wall, compiling = float(match.group(1)), float(match.group(2))
    assert sessions[-1]["compile_seconds"] <= compiling + 0.05 and compiling < wall


def test_translate_and_evaluate(run_dir, capsys):
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(run_dir), "--beam-size", "2",
                 "a b c", "d e"]) == 0
    # One line per sentence (a barely trained model may translate to an empty line).
    assert capsys.readouterr().out.count("\n") == 2
    assert main(["evaluate", "--checkpoint", str(run_dir), "--limit", "5",
                 "--beam-size", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["sentences"] == 5 and "nrefs:1|case:mixed" in result["signature"]
    assert 0.0 <= result["bleu"] <= 100.0


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_errors_are_one_line(run_dir, tmp_path, capsys):
    assert "already holds a run; pass --resume" in _error(
        capsys, ["train", *TINY, "--steps", "2", "--out", str(run_dir)])
    assert "Multi30k not found" in _error(
        capsys, ["train", "--data", "multi30k", "--data-dir", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "m")])
    assert "no config.json" in _error(
        capsys, ["translate", "--checkpoint", str(tmp_path / "nothing"), "hello"])
    assert "unknown data 'klingon'" in _error(
        capsys, ["train", "--data", "klingon", "--out", str(tmp_path / "k")])
    # 25 examples cannot fill one batch of 64: said before any training, nothing saved
    assert "the training data gives no batch" in _error(
        capsys, ["train", "--data", "copy", "--examples", "25", "--batch-size", "64",
                 "--no-progress", "--steps", "2", "--out", str(tmp_path / "small")])
    assert not (tmp_path / "small" / "checkpoints").exists()


def test_a_bad_value_is_a_one_line_user_error(run_dir, capsys):
    assert "beam_size must be a positive int, got 0" in _error(
        capsys, ["translate", "--checkpoint", str(run_dir), "a b", "--beam-size", "0"])
    assert "length_penalty" in _error(
        capsys, ["translate", "--checkpoint", str(run_dir), "a b", "--length-penalty", "-1"])


@pytest.mark.parametrize("error", [TypeError, ValueError])
def test_a_bug_deep_inside_shows_its_traceback_and_asks_for_a_report(
    run_dir, capsys, monkeypatch, error
):
    import attention.model.decoding as decoding

    def broken(*args, **kwargs):
        raise error("an internal function was called wrongly")

    # Deep inside translate: after the command checked its arguments, while it decodes.
    monkeypatch.setattr(decoding, "decode_loop", broken)
    assert main(["translate", "--checkpoint", str(run_dir), "a b", "--beam-size", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert f"{error.__name__}: an internal function was called wrongly" in err
    assert "attention translate: this is a bug in attention" in err.splitlines()[-1]


def test_the_quick_start_trains_its_own_width_without_label_smoothing():
    parse = _build_parser().parse_args
    quick, preset = _model_config(parse(["train"]), vocab_size=50)
    assert preset == "tiny" and (quick.d_model, quick.d_ff) == (64, 256)
    assert quick.dropout_rate == 0.0 and quick.num_layers == 2
    named, _ = _model_config(parse(["train", "--preset", "tiny"]), vocab_size=50)
    assert (named.d_model, named.d_ff) == (128, 512)  # a named preset is that preset
    assert _train_config(parse(["train"])).label_smoothing == 0.0
    assert _train_config(parse(["train", "--data", "multi30k"])).label_smoothing == 0.1
    assert _train_config(parse(["train", "--task", "lm"])).label_smoothing == 0.1
    assert _train_config(parse(["train", "--label-smoothing", "0.2"])).label_smoothing == 0.2


def test_the_toy_tasks_save_at_the_end_and_longer_runs_every_500_steps():
    parse = _build_parser().parse_args
    assert _train_config(parse(["train"])).checkpoint_every == 0  # the quick start
    assert _train_config(parse(["train", "--data", "reverse"])).checkpoint_every == 0
    assert _train_config(parse(["train", "--data", "multi30k"])).checkpoint_every == 500
    assert _train_config(parse(["train", "--task", "lm"])).checkpoint_every == 500
    assert _train_config(parse(["train", "--checkpoint-every", "7"])).checkpoint_every == 7


def test_positions_and_key_value_heads_reach_the_model_config():
    args = _build_parser().parse_args(["train", "--positional", "rope", "--num-kv-heads", "2"])
    config, preset = _model_config(args, vocab_size=50)
    assert preset == "tiny" and config.num_heads == 4
    assert (config.positional, config.num_kv_heads, config.kv_heads) == ("rope", 2, 2)
    default, _ = _model_config(_build_parser().parse_args(["train"]), vocab_size=50)
    assert (default.positional, default.num_kv_heads) == ("sinusoidal", None)


def test_bad_positions_or_key_value_heads(tmp_path, capsys):
    assert "num_kv_heads=3 must divide num_heads=4" in _error(
        capsys, ["train", *TINY, "--steps", "2", "--num-kv-heads", "3",
                 "--out", str(tmp_path / "k")])
    with pytest.raises(SystemExit) as exit_info:  # argparse lists the choices
        main(["train", "--positional", "rotary"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'rotary'" in capsys.readouterr().err


@pytest.mark.parametrize("attention", ["mla", "differential", "linear"])
def test_the_attention_of_a_language_model_reaches_its_config(attention):
    args = _build_parser().parse_args(["train", "--task", "lm", "--attention", attention])
    config, _ = _model_config(args, vocab_size=50)
    assert config.attention == attention and config.architecture == "decoder_only"
    # linear attention takes no rotary positions: the language model's default gives way
    assert config.positional == ("learned" if attention == "linear" else "rope")


@pytest.mark.parametrize("task", [[], ["--task", "lm"]])
def test_qk_norm_soft_cap_sinks_and_the_gate_reach_the_config_of_either_model(task):
    args = _build_parser().parse_args(["train", *task, "--qk-norm", "rms", "--soft-cap", "30",
                                       "--attention-sinks", "--output-gate"])
    config, _ = _model_config(args, vocab_size=50)
    assert (config.qk_norm, config.attn_soft_cap, config.attention_sinks,
            config.output_gate) == ("rms", 30.0, True, True)
    plain, _ = _model_config(_build_parser().parse_args(["train", *task]), vocab_size=50)
    assert (plain.qk_norm, plain.attn_soft_cap, plain.attention_sinks,
            plain.output_gate) == (None, None, False, False)


def test_an_attention_variant_in_a_translation_model_is_a_one_line_error(tmp_path, capsys):
    message = _error(capsys, ["train", *TINY, "--steps", "2", "--attention", "mla",
                              "--out", str(tmp_path / "m")])
    assert "attention='mla'" in message and "\n" not in message.strip()


def test_checkpoint_from_another_config_is_a_one_line_error(run_dir, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((run_dir / "config.json").read_text())
    config["model"]["d_ff"] *= 2
    (other / "config.json").write_text(json.dumps(config))
    (other / "tokenizer.json").write_text((run_dir / "tokenizer.json").read_text())
    (other / "checkpoints").symlink_to(run_dir / "checkpoints")
    assert "does not match this model" in _error(
        capsys, ["translate", "--checkpoint", str(other), "a b"])


def test_python_dash_m_runs_the_same_program():
    result = subprocess.run([sys.executable, "-m", "attention", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "train" in result.stdout and "translate" in result.stdout


def test_grade_subcommand_reaches_the_grader(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["grade", "--help"])
    assert exit_info.value.code == 0
    assert "usage: attention grade" in capsys.readouterr().out


LM = ["--task", "lm", "--examples", "300", "--batch-size", "8", "--no-progress",
      "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-lm") / "run"
    assert main(["train", *LM, "--steps", "4", "--out", str(out)]) == 0
    return out


def test_train_lm_generate_and_evaluate(lm_dir, capsys):
    config = json.loads((lm_dir / "config.json").read_text())
    assert config["model"]["architecture"] == "decoder_only" and config["data"] == "svo"
    assert (lm_dir / "self_attention.png").is_file()
    capsys.readouterr()
    args = ["generate", "--checkpoint", str(lm_dir), "the red", "the old king sees",
            "--top-k", "5", "--max-new-tokens", "6", "--seed", "3"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("the red")
    assert main([*args, "--no-cache"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # the cache changes nothing
    assert main(["evaluate", "--checkpoint", str(lm_dir), "--limit", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["perplexity"] > 1 and result["texts"] == 20


def test_view_of_a_language_model_run_reads_the_text(lm_dir, tmp_path, capsys):
    import types

    from attention.application.view import check_language_model_view

    out = tmp_path / "lm.html"
    assert main(["view", "--checkpoint", str(lm_dir), "the old king sees", "--out",
                 str(out)]) == 0
    page = out.read_text()
    assert "self-attention" in page and "the old king sees" in page
    assert "--target and --beam-size are for a translation run" in _error(
        capsys, ["view", "--checkpoint", str(lm_dir), "the king", "--beam-size", "2",
                 "--out", str(out)])
    linear = types.SimpleNamespace(model=types.SimpleNamespace(
        config=types.SimpleNamespace(attention="linear")))
    with pytest.raises(ValueError, match="attention='linear', which forms no attention map"):
        check_language_model_view(linear)


def test_generate_and_translate_refuse_the_other_kind_and_bad_knobs(run_dir, lm_dir, capsys):
    cases = [
        (["generate", "--checkpoint", str(run_dir), "a b"], "holds a translation model"),
        (["translate", "--checkpoint", str(lm_dir), "a b"], "holds a language model"),
        (["generate", "--checkpoint", str(lm_dir), "the", "--temperature", "0"],
         "use greedy decoding"),
        (["generate", "--checkpoint", str(lm_dir), "the", "--top-p", "1.5"], "top_p"),
        (["generate", "--checkpoint", str(lm_dir), "the", "--top-k", "0"], "top_k"),
        (["generate", "--checkpoint", str(lm_dir), ""], "prompt 0 is empty"),
        (["train", "--task", "lm", "--data", "copy"], "unknown data 'copy' for --task lm"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_translate_can_sample(run_dir, capsys):
    args = ["translate", "--checkpoint", str(run_dir), "a b c", "--sample", "--top-k", "3",
            "--seed", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and len(first.splitlines()) == 1


def test_precision_reaches_the_config_and_the_run_says_which_it_took(run_dir, tmp_path, capsys):
    parse = _build_parser().parse_args
    for flag, expected in ((["--precision", "bfloat16"], "bfloat16"), ([], "auto")):
        config, _ = _model_config(parse(["train", *flag]), vocab_size=50)
        assert config.precision == expected
    out = tmp_path / "bf16"
    assert main(["train", *TINY, "--steps", "2", "--precision", "bfloat16",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "precision bfloat16 (mixed)" in printed
    assert json.loads((out / "config.json").read_text())["model"]["precision"] == "bfloat16"
    # A float32 run decodes in bfloat16 when asked (the parameters are float32 either way).
    assert main(["translate", "--checkpoint", str(run_dir), "--precision", "bfloat16",
                 "a b c"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--precision", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err
