"""Choosing and building the worker's sandbox."""

import os
import pathlib
import stat
import subprocess
import sys
import venv

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


def test_closed_folders_are_the_highest_that_others_cannot_enter(tmp_path):
    # top (0700) / open (0755) / inner (0700) / python: only ``top`` is covered, once
    inner = tmp_path / "top" / "open" / "inner"
    (inner / "python").mkdir(parents=True)
    (tmp_path / "top" / "other").mkdir()
    for folder, mode in [(tmp_path / "top", 0o700), (tmp_path / "top" / "open", 0o755),
                         (inner, 0o700)]:
        folder.chmod(mode)
    closed_above = [str(a) for a in tmp_path.parents if not a.stat().st_mode & stat.S_IXOTH]
    found = sandbox.closed_folders([str(inner / "python"), str(tmp_path / "top" / "other")])
    assert found == (closed_above[-1:] or [str(tmp_path / "top")])
    assert sandbox.closed_folders([str(tmp_path)]) == closed_above[-1:]


def test_a_dropped_user_passes_closed_folders_above_python(tmp_path, monkeypatch):
    # Python below a 0700 folder: covered by a tmpfs, and the folders between it and Python
    # made 0755, before Python is bound back; without a user of its own no tmpfs is added.
    python = tmp_path / "closed" / "a" / "venv"
    python.mkdir(parents=True)
    (tmp_path / "closed").chmod(0o700)
    monkeypatch.setattr(sandbox, "python_paths", lambda _: [str(python)])
    for drop in (True, False):
        command = sandbox.Sandbox(sandbox.BUBBLEWRAP, drop_user=drop).command(
            tmp_path, ["python", "worker.py"])
        bind = next(i for i, a in enumerate(command) if a == "--ro-bind"
                    and command[i + 1] == str(python))
        covered = [command[i + 1] for i, a in enumerate(command[:bind]) if a == "--tmpfs"]
        closed = sandbox.closed_folders([str(python)])  # tmp_path/closed, or a folder above
        assert closed and all((c in covered) == drop for c in closed)
        made = command.index(str(tmp_path / "closed" / "a"))
        assert command[made - 3:made] == ["--perms", "0755", "--dir"] and made < bind


@pytest.mark.skipif(os.geteuid() != 0 or not sandbox.bubblewrap_works(),
                    reason="a worker with a user id of its own: bubblewrap, run as root")
def test_a_worker_with_its_own_user_runs_its_own_python(tmp_path):
    # A venv in a 0700 folder, with this Python's home hidden as well: the worker must run
    # the venv's Python with its own standard library, not one it happens to find elsewhere.
    venv.create(tmp_path / "closed" / "venv", symlinks=True, with_pip=False)
    (tmp_path / "closed").chmod(0o700)
    python = str(tmp_path / "closed" / "venv" / "bin" / "python")
    box = sandbox.choose("strict", hidden=sandbox.hidden_paths())
    assert box.drop_user
    (tmp_path / "work").mkdir()
    code = "import os, sys; print(os.getuid(), sys.prefix, os.__file__)"
    done = subprocess.run(box.command(tmp_path / "work", [python, "-I", "-c", code]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    uid, prefix, os_file = done.stdout.split()
    assert int(uid) != 0 and prefix == str(tmp_path / "closed" / "venv")
    assert os_file.startswith(os.path.realpath(sys.base_prefix) + os.sep), os_file


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


# ----------------------------------------------------------------------------- the shared cache


def _entry(data: bytes) -> bytes:
    from jax._src import compilation_cache

    return compilation_cache.compress_executable(data)


def test_sealing_the_cache_keeps_whole_entries_read_only_in_a_folder_nobody_lists():
    with sandbox.CompilationCache() as cache:
        assert cache.mount() == sandbox.CacheMount(cache.folder, writable=True)
        folder = pathlib.Path(cache.folder)
        whole = _entry(b"an executable" * 50)
        (folder / "jit_f-1-cache").write_bytes(whole)
        (folder / "jit_f-2-cache").write_bytes(whole[: len(whole) // 2])  # cut short
        (folder / "jit_f-3-cache").symlink_to("/etc/hostname")
        assert cache.seal() == 1
        assert cache.mount() == sandbox.CacheMount(cache.folder, writable=False)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o111
        os.chmod(folder, 0o700)  # (to look inside: the grader is the owner)
        assert sorted(p.name for p in folder.iterdir()) == ["jit_f-1-cache"]
        assert stat.S_IMODE((folder / "jit_f-1-cache").stat().st_mode) == 0o444
        os.chmod(folder, 0o111)
    assert not folder.exists()


def test_the_environment_writes_the_cache_only_through_a_writable_mount():
    inside = sandbox.CACHE_INSIDE
    canary = sandbox.clean_environment("/tmp/grading", sandbox.CacheMount("/x", True))
    student = sandbox.clean_environment("/tmp/grading", sandbox.CacheMount("/x", False))
    assert canary["JAX_COMPILATION_CACHE_DIR"] == student["JAX_COMPILATION_CACHE_DIR"] == inside
    assert float(canary["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]) == 0
    # a student's JAX never tries to write (no failed write, no warning per program)
    assert float(student["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]) > 1e9


PROBE = '''
import json, os, sys
folder, entry, found = sys.argv[1], sys.argv[2], {}
def attempt(name, action):
    try:
        action()
        found[name] = "done"
    except OSError as e:
        found[name] = type(e).__name__
attempt("list", lambda: os.listdir(folder))
attempt("read", lambda: open(os.path.join(folder, entry), "rb").read())
attempt("overwrite", lambda: open(os.path.join(folder, entry), "wb").write(b"poison"))
attempt("append", lambda: open(os.path.join(folder, entry), "ab").write(b"poison"))
attempt("create", lambda: open(os.path.join(folder, "jit_g-9-cache"), "wb").write(b"x"))
attempt("remove", lambda: os.unlink(os.path.join(folder, entry)))
attempt("rename", lambda: os.rename(os.path.join(folder, entry), folder + "/other"))
attempt("chmod", lambda: os.chmod(folder, 0o777))
attempt("chmod entry", lambda: os.chmod(os.path.join(folder, entry), 0o666))
attempt("mkdir", lambda: os.makedirs(folder, exist_ok=True))  # what JAX does first
print(json.dumps(found))
'''


@pytest.mark.skipif(sandbox.choose("auto").level != sandbox.BUBBLEWRAP,
                    reason="bubblewrap is not installed or cannot create namespaces here")
def test_a_worker_can_open_a_sealed_entry_by_name_and_nothing_else(tmp_path):
    import json
    import subprocess
    import sys

    box = sandbox.choose("auto", hidden=sandbox.hidden_paths(tmp_path))
    workdir = tmp_path / "check"
    workdir.mkdir()
    (workdir / "probe.py").write_text(PROBE)
    data = _entry(b"the model solution's program" * 20)

    def probe(cache):
        command = box.command(workdir, [sys.executable, "-I", "-S", "probe.py",
                                        sandbox.CACHE_INSIDE, "jit_f-1-cache"], cache.mount())
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env=sandbox.clean_environment(sandbox.SANDBOX_ROOT))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    with sandbox.CompilationCache() as cache:
        (pathlib.Path(cache.folder) / "jit_f-1-cache").write_bytes(data)
        canary = probe(cache)  # the canary's worker fills the cache
        assert canary["create"] == "done"
        (pathlib.Path(cache.folder) / "jit_f-1-cache").write_bytes(data)
        (pathlib.Path(cache.folder) / "jit_g-9-cache").unlink()
        cache.seal()
        student = probe(cache)
        os.chmod(cache.folder, 0o700)
        entries = {p.name: p.read_bytes() for p in pathlib.Path(cache.folder).iterdir()}
    assert student.pop("read") == student.pop("mkdir") == "done"
    assert student.pop("list") == "PermissionError"
    assert set(student.values()) <= {"PermissionError", "OSError"}, student  # EROFS or EACCES
    assert entries == {"jit_f-1-cache": data}


def test_the_cache_is_bound_writable_for_the_canary_and_read_only_for_a_student(tmp_path):
    box = sandbox.Sandbox(sandbox.BUBBLEWRAP)
    argv = ["python", "worker.py"]
    canary = box.command(tmp_path, argv, sandbox.CacheMount("/host/cache", writable=True))
    student = box.command(tmp_path, argv, sandbox.CacheMount("/host/cache", writable=False))
    assert canary[canary.index("/host/cache") - 1:][:3] == [
        "--bind", "/host/cache", sandbox.CACHE_INSIDE]
    assert student[student.index("/host/cache") - 1:][:3] == [
        "--ro-bind", "/host/cache", sandbox.CACHE_INSIDE]
    # bound after /tmp is emptied (a later mount wins), and never at the process level
    assert student.index("/host/cache") > student.index("/tmp")
    assert "/host/cache" not in sandbox.Sandbox(sandbox.PROCESS).command(
        tmp_path, argv, sandbox.CacheMount("/host/cache", writable=False))
