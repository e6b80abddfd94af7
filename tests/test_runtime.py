"""attention/_runtime.py: the persistent compilation cache that ``import attention`` turns on."""

import contextlib
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import pytest

from attention import _runtime

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _jax_cache_settings():
    """Restore this process's cache settings after a test that changes them."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)


def test_the_variable_chooses_the_folder_or_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _runtime.compilation_cache_dir({}) == tmp_path / "xdg" / "attention" / "jax"
    folder = tmp_path / "mine"
    assert _runtime.compilation_cache_dir({_runtime.CACHE_ENV: str(folder)}) == folder
    for off in ("0", "off", "OFF", "false", "no", " "):
        assert _runtime.compilation_cache_dir({_runtime.CACHE_ENV: off}) is None, off


def test_configuring_sets_jax_unless_jax_already_has_a_folder(tmp_path):
    with _jax_cache_settings():
        jax.config.update("jax_compilation_cache_dir", None)
        folder = tmp_path / "cache"
        assert _runtime.configure_compilation_cache({_runtime.CACHE_ENV: str(folder)}) == folder
        assert folder.is_dir() and jax.config.jax_compilation_cache_dir == str(folder)
        assert (jax.config.jax_persistent_cache_min_compile_time_secs
                == _runtime.MIN_COMPILE_SECONDS)
        # The user's own setting wins: a second call with another folder changes nothing.
        other = tmp_path / "other"
        assert _runtime.configure_compilation_cache({_runtime.CACHE_ENV: str(other)}) == folder
        assert not other.exists() and jax.config.jax_compilation_cache_dir == str(folder)


def test_off_and_unwritable_folders_leave_jax_without_a_cache(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with _jax_cache_settings():
        jax.config.update("jax_compilation_cache_dir", None)
        assert _runtime.configure_compilation_cache({_runtime.CACHE_ENV: "0"}) is None
        assert jax.config.jax_compilation_cache_dir is None
        with pytest.warns(UserWarning, match=r"COMPILATION_CACHE: cannot create .*a_file"):
            assert _runtime.configure_compilation_cache(
                {_runtime.CACHE_ENV: str(blocker / "cache")}) is None
        assert jax.config.jax_compilation_cache_dir is None


_COUNT_HITS = textwrap.dedent("""
    import jax, jax.numpy as jnp, jax.monitoring
    events = []
    jax.monitoring.register_event_listener(lambda event, **kwargs: events.append(event))
    import attention
    print("folder", jax.config.jax_compilation_cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # even tiny programs
    x = jnp.arange(12.0).reshape(3, 4)
    jax.jit(lambda a: jnp.tanh(a @ a.T).sum())(x).block_until_ready()
    print("hits", sum(e == "/jax/compilation_cache/cache_hits" for e in events))
    print("misses", sum(e == "/jax/compilation_cache/cache_misses" for e in events))
""")


def _run(env_update):
    env = {**os.environ, **env_update, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _COUNT_HITS], env=env, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    return dict(line.split(" ", 1) for line in out if line)


def test_import_turns_the_cache_on_and_a_second_process_loads_instead_of_compiling(tmp_path):
    folder = tmp_path / "jit"
    first = _run({_runtime.CACHE_ENV: str(folder)})
    assert first["folder"] == str(folder) and first["hits"] == "0" and int(first["misses"]) > 0
    assert any(folder.iterdir()), "the first run wrote nothing to the cache"
    # The same programs again, in a new process: every one is loaded, none compiled.
    assert _run({_runtime.CACHE_ENV: str(folder)}) == {
        "folder": str(folder), "hits": first["misses"], "misses": "0"}
    assert _run({_runtime.CACHE_ENV: "0"}) == {"folder": "None", "hits": "0", "misses": "0"}
