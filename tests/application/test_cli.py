"""The command line end to end, on a tiny setting: train, resume, translate, evaluate, errors."""

import json
import subprocess
import sys

import pytest

from attention.application.cli import _build_parser, _model_config, main

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
    assert "resumed from step 6" in capsys.readouterr().out
    steps = [json.loads(line)["step"]
             for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [6, 8]  # a line every log_every=20 steps and at the last step


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
