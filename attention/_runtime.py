"""What the package sets in JAX when it is imported: a persistent compilation cache.

Most of the time of a small run on a CPU is XLA compiling (a notebook in its fast setting
spends more than half its time there), and a student re-runs the same cells with the same
shapes again and again. So ``import attention`` turns on JAX's persistent compilation cache:
each compiled program is written to disk and the next run (a re-run notebook, a second
``attention train``) loads it instead of compiling it again. The cache key covers the program,
the JAX and XLA versions, the device and ``XLA_FLAGS``, so a hit is the same program.

``ATTENTION_COMPILATION_CACHE`` chooses:

* unset: ``$XDG_CACHE_HOME/attention/jax`` (default ``~/.cache/attention/jax``);
* a folder: that folder;
* ``0``, ``off``, ``false`` or ``no``: no cache (JAX compiles every program in every run).

Nothing is changed where JAX's own cache folder is already set (``JAX_COMPILATION_CACHE_DIR``
or ``jax.config.update("jax_compilation_cache_dir", ...)``): the user's setting wins. Programs
that took at least ``MIN_COMPILE_SECONDS`` to compile are kept (JAX's default, one second,
skips most of a small model's programs); the folder is never pruned, as JAX's own default, and
can be deleted at any time. A cache folder that cannot be created gives one warning and no
cache.
"""

from __future__ import annotations

import os
import pathlib
import warnings

import jax

CACHE_ENV = "ATTENTION_COMPILATION_CACHE"
OFF_VALUES = ("0", "off", "false", "no")
# Programs that compiled faster than this are not written: one operation run eagerly compiles
# in about a millisecond, and writing thousands of those costs more than it saves. Measured on
# notebook 06 in its fast setting (2-core EPYC, quiet): no cache 39.6 s; this threshold 41.1 s,
# then 18.4 s when re-run; 0.1 s: 44.2 s, then 38.6 s.
MIN_COMPILE_SECONDS = 0.02


def default_cache_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/attention/jax``, else ``~/.cache/attention/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "attention" / "jax"


def compilation_cache_dir(environ=os.environ) -> pathlib.Path | None:
    """The folder ``ATTENTION_COMPILATION_CACHE`` in ``environ`` asks for; None for off.

    >>> compilation_cache_dir({"ATTENTION_COMPILATION_CACHE": "off"}) is None
    True
    >>> str(compilation_cache_dir({"ATTENTION_COMPILATION_CACHE": "/tmp/jit"}))
    '/tmp/jit'
    """
    value = environ.get(CACHE_ENV)
    if value is None:
        return default_cache_dir()
    if value.strip().lower() in OFF_VALUES or not value.strip():
        return None
    return pathlib.Path(value).expanduser()


def configure_compilation_cache(environ=os.environ) -> pathlib.Path | None:
    """Turn on JAX's persistent compilation cache as ``ATTENTION_COMPILATION_CACHE`` says.

    Returns the folder in use, or None where the cache is off. Where JAX's own cache folder is
    already set it is left as it is (and returned).
    """
    already = jax.config.jax_compilation_cache_dir
    if already:
        return pathlib.Path(already)
    folder = compilation_cache_dir(environ)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(f"{CACHE_ENV}: cannot create the compilation cache folder {folder} "
                      f"({error.strerror}); compiling without a cache. Set {CACHE_ENV} to a "
                      f"writable folder, or to 0 to silence this.", stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder


# The folder in use for this process (None: no cache); set once, on the package's import.
COMPILATION_CACHE_DIR = configure_compilation_cache()
