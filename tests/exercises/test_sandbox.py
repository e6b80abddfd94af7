"""Choosing and building the worker's sandbox."""

import os
import pathlib

import pytest

from attention.exercises import sandbox


def test_choose_names_the_argument_and_refuses_strict_without_bubblewrap(monkeypatch):
    with pytest.raises(ValueError, match="sandbox must be one of auto, strict, none, got 'x'"):
        sandbox.choose("x")
    monkeypatch.setattr(sandbox, "bubblewrap_works", lambda: False)
    with pytest.raises(sandbox.SandboxUnavailable, match="strict"):
        sandbox.choose("strict")
    assert sandbox.choose("auto").level == sandbox.PROCESS
    assert sandbox.choose("none").level == sandbox.PROCESS
    assert "process only" in sandbox.choose("auto").describe()


def test_hidden_paths_cover_home_the_checkout_and_the_folders_given(tmp_path):
    hidden = sandbox.hidden_paths(tmp_path)
    assert os.path.realpath(os.path.expanduser("~")) in hidden or os.path.expanduser("~") == "/"
    assert os.path.realpath(tmp_path) in hidden
    checkout = pathlib.Path(sandbox.__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        assert str(checkout) in hidden
    assert "/" not in hidden and "/usr" not in hidden


def test_the_bubblewrap_command_hides_the_package_and_cuts_the_network(tmp_path):
    box = sandbox.Sandbox(sandbox.BUBBLEWRAP, hidden=(str(tmp_path / "class"),))
    command = box.command(tmp_path, ["python", "worker.py"])
    assert "--unshare-net" in command and "--unshare-pid" in command
    assert "--die-with-parent" in command
    assert command[command.index("--ro-bind") + 1:command.index("--ro-bind") + 3] == ["/", "/"]
    package = str(pathlib.Path(sandbox.__file__).resolve().parents[1])
    tmpfs = [command[i + 1] for i, a in enumerate(command) if a == "--tmpfs"]
    assert package in tmpfs and str(tmp_path / "class") in tmpfs and "/tmp" in tmpfs
    assert command[-2:] == ["python", "worker.py"]
    # the package is hidden after every re-exposed Python folder (later mounts win)
    last_bind = max(i for i, a in enumerate(command) if a == "--ro-bind")
    assert command.index(package, last_bind) > last_bind


def test_the_clean_environment_has_nothing_of_the_teachers(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "abc")
    env = sandbox.clean_environment("/tmp/grading")
    assert "SECRET_TOKEN" not in env and env["HOME"] == "/tmp/grading"
    assert "JAX_COMPILATION_CACHE_DIR" not in env and env["JAX_PLATFORMS"] == "cpu"


def test_workers_keep_no_compilation_cache_that_another_check_would_load(monkeypatch):
    from attention._runtime import compilation_cache_dir

    monkeypatch.setenv("ATTENTION_COMPILATION_CACHE", "/tmp/shared-jit")
    assert compilation_cache_dir(sandbox.clean_environment("/tmp/grading")) is None


def test_a_check_group_bounds_the_whole_check_and_kills_what_left_the_tree():
    import subprocess
    import time

    group = sandbox.CheckGroup.make(sandbox.Limits(memory_bytes=1 << 30, max_processes=64))
    if group is None:
        pytest.skip("no cgroup can be made here (the limits stay per process)")
    marker = "attention-check-group-test"
    try:
        # a child that leaves the process group and outlives its parent
        subprocess.run(group.wrap(["sh", "-c", f"setsid sh -c 'sleep 60; : {marker}' "
                                   ">/dev/null 2>&1 &"]), check=True)
        time.sleep(0.2)
        assert _processes_with(marker)
    finally:
        group.close()
    time.sleep(0.1)
    assert _processes_with(marker) == []
    assert not any(os.path.exists(f) for f in group.folders)


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if marker in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode():
                found.append(pid)
        except OSError:
            pass
    return found
