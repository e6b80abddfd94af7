"""Confining the grader's worker: what a student's code may touch, at each level the OS allows.

Two levels, the best one available chosen by ``--sandbox auto`` (see ``docs/teachers.md`` for
what a dishonest student can and cannot do at each):

``bubblewrap`` (Linux with the ``bwrap`` program, Debian's ``bubblewrap`` package)
    The worker runs in new PID, network, IPC and UTS namespaces: it sees only its own processes,
    has no network, and every process it starts dies with it (the namespace's init is killed
    after every check). The file system is read-only; ``/tmp``, the teacher's home, the project
    checkout that holds the package and its model solutions, the submissions folder and the
    output folder are replaced by empty folders (Python, its venv and its site-packages are
    bound back read-only wherever they live, below /root's 0700 too); the only writable place is
    the check's own folder, a fresh tmpfs of ``folder_bytes`` holding the submission read-only.
    The grading run's compilation cache (:class:`CompilationCache`), filled by the canary's
    workers, is bound read-only into every student's. When the grader runs as root, the worker
    also drops to an unprivileged user id of its own (one per check), so that it cannot write
    anything the teacher owns, signal the grader or a classmate's worker, or start more than
    ``max_processes`` processes and threads.
``process`` (any POSIX system)
    POSIX resource limits (address space, CPU time, file size, open files), an environment
    with nothing of the teacher's, the submission alone in a fresh temporary folder as the
    working folder and HOME, no JAX compilation cache, and the whole process group killed after
    every check; on Linux, processes that left the group (``setsid``) are found and killed too,
    because the grader adopts orphans (``PR_SET_CHILD_SUBREAPER``). The file system and the
    network are the teacher's: at this level a student's code can read and write what the
    teacher can.

In both, the verdict is computed in the grader's own process from raw arrays (see
:mod:`attention.exercises.remote`): no level lets a student's code write its own grade.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
import shutil
import site
import stat
import sys
import sysconfig
import threading

BUBBLEWRAP = "bubblewrap"
PROCESS = "process"
CHOICES = ("auto", "strict", "none")
SANDBOX_ROOT = "/tmp/grading"  # the check's folder, as the worker sees it under bubblewrap
# One unprivileged user id per check, when the grader runs as root: a block of 1000 per grader
# process (by its pid), so that two graders on one machine never share a user id, its
# process limit or the right to signal each other's workers.
_UIDS = itertools.cycle(range(200_000 + os.getpid() % 100_000 * 1000,
                              200_000 + (os.getpid() % 100_000 + 1) * 1000))
_UID_LOCK = threading.Lock()


class SandboxUnavailable(RuntimeError):
    """``--sandbox strict`` on a machine without a working namespace sandbox."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """POSIX resource limits of one worker.

    Attributes:
      memory_bytes: address space (RLIMIT_AS); JAX on the CPU needs about 1.5 GiB.
      cpu_seconds: CPU time (RLIMIT_CPU), a backstop behind the grader's wall-clock limit.
      file_bytes: the largest file it may write (RLIMIT_FSIZE), its printed output included.
      open_files: RLIMIT_NOFILE.
      max_processes: processes and threads (RLIMIT_NPROC), enforced where the worker has a
        user id of its own (bubblewrap level, grader run as root).
      folder_bytes: the check's whole folder, a size-capped tmpfs (bubblewrap level).
    """

    memory_bytes: int = 6 << 30
    cpu_seconds: int = 600
    file_bytes: int = 16 << 20
    open_files: int = 1024
    max_processes: int = 256
    folder_bytes: int = 64 << 20


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """How workers are confined: the level and the paths hidden from them."""

    level: str
    limits: Limits = Limits()
    hidden: tuple[str, ...] = ()
    drop_user: bool = False

    def describe(self) -> str:
        """One line for the grader's output: the level and what it means."""
        if self.level == BUBBLEWRAP:
            user = ("an unprivileged user id per check, " if self.drop_user else "")
            return (f"sandbox: bubblewrap (read-only file system, no network, private "
                    f"processes, {user}the package and the teacher's folders hidden)")
        return ("sandbox: process only (resource limits, a clean environment and the process "
                "tree killed after each check; the student's code can read and write the "
                "teacher's files and use the network: install bubblewrap for more)")

    def inside(self, workdir: pathlib.Path) -> str:
        """Where the worker sees ``workdir``."""
        return SANDBOX_ROOT if self.level == BUBBLEWRAP else str(workdir)

    def command(self, workdir: pathlib.Path, argv: list[str],
                cache: CacheMount | None = None) -> list[str]:
        """The command line that runs ``argv`` confined, with ``workdir`` as its folder;
        ``cache``: the grading run's compilation cache, bound at :data:`CACHE_INSIDE`
        (bubblewrap level only)."""
        limits = self.limits
        rlimits = [f"--as={limits.memory_bytes}", f"--cpu={limits.cpu_seconds}",
                   f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}",
                   "--core=0"]
        if self.level != BUBBLEWRAP:
            return [*_prlimit(rlimits), *argv]
        inner = argv
        if self.drop_user:
            with _UID_LOCK:
                uid = next(_UIDS)
            rlimits.append(f"--nproc={limits.max_processes}")
            inner = [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={uid}",
                     "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", *argv]
        bwrap = [
            shutil.which("bwrap"), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp",
            *(arg for d in ("/var/tmp", "/run", "/dev/shm") if os.path.isdir(d)
              for arg in ("--tmpfs", d)),
            "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "grading", "--die-with-parent",
            "--new-session",
        ]
        if os.geteuid() != 0:
            bwrap.append("--unshare-user")
        for path in self.hidden:
            bwrap += ["--tmpfs", path]
        # Python may live under a hidden folder or under /tmp, /var/tmp, /run or /dev/shm
        # (a throwaway venv): re-bound read-only wherever it is.
        # A folder above it that others may not enter (/root, 0700) is emptied too, when the
        # worker has a user id of its own; bubblewrap makes the folders between an empty one
        # and Python 0700, so they are made first, open to all (0755).
        python = python_paths(argv[0])
        emptied = [*EMPTIED, *self.hidden]
        if self.drop_user:
            for path in closed_folders(python):
                bwrap += ["--tmpfs", path]
                emptied.append(path)
        between = {str(a) for p in python for a in pathlib.Path(p).parents
                   if any(_inside(str(a), e) and str(a) != e for e in emptied)}
        for path in sorted(between, key=lambda a: (a.count(os.sep), a)):
            bwrap += ["--perms", "0755", "--dir", path]
        for path in python:
            bwrap += ["--ro-bind", path, path]
        # hidden again, in case a folder above was re-exposed: the package, the teacher's
        # folder, and any hidden folder inside a Python folder
        again = [h for h in self.hidden if any(_inside(h, p) and h != p for p in python)]
        for path in [*again, *_package_paths()]:
            bwrap += ["--tmpfs", path]
        # The check's folder: a fresh tmpfs of bounded size, writable by the worker, with the
        # submission and the worker script bound read-only. Nothing in it is the grader's, so
        # nothing the worker leaves there is ever opened by the grader.
        bwrap += ["--perms", "1777", "--size", str(limits.folder_bytes), "--tmpfs", SANDBOX_ROOT]
        for name in sorted(p.name for p in workdir.iterdir()):
            bwrap += ["--ro-bind", str(workdir / name), f"{SANDBOX_ROOT}/{name}"]
        if cache is not None:  # read-only but for the canary's workers, which fill it
            bwrap += ["--bind" if cache.writable else "--ro-bind", cache.folder, CACHE_INSIDE]
        bwrap += ["--chdir", SANDBOX_ROOT]
        return [*_prlimit(rlimits), *bwrap, "--", *inner]


def _prlimit(rlimits: list[str]) -> list[str]:
    """util-linux's prlimit sets the limits, then runs the command: no Python code between
    fork and exec in the grader, which has threads."""
    prlimit = shutil.which("prlimit")
    return [prlimit, *rlimits, "--"] if prlimit else []


def site_dirs() -> list[str]:
    """Where the worker finds NumPy and JAX (it runs with ``-I -S``: no .pth files, so an
    editable install of the package is not on its path)."""
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def python_paths(python: str = sys.executable) -> list[str]:
    """The folders the worker's Python needs, as real paths: this interpreter's prefixes and
    site-packages, and ``python``'s own folder, its venv and the interpreter it links to."""
    python = os.path.abspath(python)
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, *site_dirs(),
             os.path.dirname(python), os.path.dirname(os.path.realpath(python))]
    venv = os.path.dirname(os.path.dirname(python))
    if os.path.isfile(os.path.join(venv, "pyvenv.cfg")):
        paths.append(venv)
    found = []
    for p in paths:
        real = os.path.realpath(p)
        if os.path.isdir(real) and real not in _SYSTEM and real not in found:
            found.append(real)
        if os.path.isdir(p) and os.path.abspath(p) != real and os.path.abspath(p) not in found:
            found.append(os.path.abspath(p))  # the path as named, when it goes through a link
    return found


def closed_folders(paths: list[str]) -> list[str]:
    """The highest folder above each of ``paths`` that other users may not enter (no search
    bit for others, as /root's 0700): a worker with a user id of its own cannot reach Python
    below it, so the sandbox covers it with an empty tmpfs and binds Python back inside."""
    closed = []
    for path in paths:
        above = [str(a) for a in reversed(pathlib.Path(path).parents) if str(a) != "/"]
        shut = next((a for a in above if not os.stat(a).st_mode & stat.S_IXOTH), None)
        if shut is not None and shut not in closed:
            closed.append(shut)
    return closed


def _package_paths() -> list[str]:
    """The installed package (answers inside) and, for a source checkout, its teacher folder."""
    package = pathlib.Path(__file__).resolve().parents[1]
    paths = [str(package)]
    teachers = package.parent / "teachers"
    if teachers.is_dir():
        paths.append(str(teachers))
    return paths


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


_SYSTEM = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt", "/proc", "/dev",
           "/sys", "/var", "/srv", "/mnt", "/media")


def hidden_paths(*extra: os.PathLike | str) -> tuple[str, ...]:
    """The teacher's folders a worker must not see: home, the project checkout that holds the
    package, the current folder, and ``extra`` (the submissions and the output folder)."""
    candidates = [os.path.expanduser("~"), os.getcwd(), *map(str, extra)]
    package = pathlib.Path(__file__).resolve().parents[1]
    if (package.parent / "pyproject.toml").exists():  # a source checkout (editable install)
        candidates.append(str(package.parent))
    hidden = []
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isdir(real) and real not in _SYSTEM and real not in hidden:
            hidden.append(real)
    return tuple(hidden)


def bubblewrap_works() -> bool:
    """True when ``bwrap`` is installed and can create its namespaces here."""
    bwrap = shutil.which("bwrap")
    if not bwrap or not sys.platform.startswith("linux"):
        return False
    import subprocess

    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
             "--unshare-pid", "--unshare-net", "--die-with-parent", "--", "true"]
    if os.geteuid() != 0:
        probe.insert(1, "--unshare-user")
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def choose(requested: str = "auto", *, hidden: tuple[str, ...] = (),
           limits: Limits = Limits()) -> Sandbox:
    """The sandbox for ``--sandbox requested``: ``auto`` (the best available), ``strict``
    (bubblewrap or :class:`SandboxUnavailable`), ``none`` (the process level only)."""
    if requested not in CHOICES:
        raise ValueError(f"sandbox must be one of {', '.join(CHOICES)}, got {requested!r}.")
    if requested != "none" and bubblewrap_works():
        drop = os.geteuid() == 0 and shutil.which("setpriv") is not None
        return Sandbox(BUBBLEWRAP, limits, hidden, drop_user=drop)
    if requested == "strict":
        raise SandboxUnavailable(
            "--sandbox strict: no namespace sandbox here (install bubblewrap, e.g. `apt-get "
            "install bubblewrap`, on Linux with user namespaces), so grading was refused; "
            "--sandbox none grades with process limits only.")
    return Sandbox(PROCESS, limits, hidden)


def explain(sandbox: Sandbox, python: str | None = None) -> str:
    """Where the workers' Python lives and what the sandbox hides: the likely cause when a
    model solution fails, and what to try."""
    python = os.path.abspath(python or sys.executable)
    where = f"Python: {python} (prefix {sys.prefix})"
    if not os.access(python, os.X_OK):
        return f"{where} is not an executable file: give the grader a Python that exists."
    if sandbox.level != BUBBLEWRAP:
        return (f"{where}, sandbox: process only. Check that this Python imports jax and "
                f"numpy, and that the model solution passes in its notebook.")
    masked = [d for d in (*EMPTIED, *sandbox.hidden)
              if any(_inside(p, d) for p in python_paths(python))]
    hides = ", ".join([*EMPTIED, *sandbox.hidden])
    return (f"{where}; the bubblewrap sandbox empties {hides}"
            + (f", and Python lives under {', '.join(masked)} (re-bound read-only)"
               if masked else "")
            + ". Try --sandbox none to see whether the sandbox is the cause, or a Python "
            "installed outside those folders.")


EMPTIED = ("/tmp", "/var/tmp", "/run", "/dev/shm")


def clean_environment(home: str, cache: CacheMount | None = None) -> dict[str, str]:
    """The worker's whole environment: nothing of the teacher's (tokens, PATH, JAX settings);
    with ``cache``, JAX's persistent compilation cache at :data:`CACHE_INSIDE`, written only
    by a worker whose mount is writable (a student's never tries: no warning per miss)."""
    shared = {} if cache is None else {
        "JAX_COMPILATION_CACHE_DIR": CACHE_INSIDE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0" if cache.writable else "1e12",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return shared | {
        "PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
        "JAX_PLATFORMS": "cpu", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
        # XLA's optimisation level 0: a check compiles many small programs and runs each a few
        # times on tiny inputs, so compiling less pays (docs/teachers.md, "Scale").
        "OPENBLAS_NUM_THREADS": "1", "XLA_FLAGS": "--xla_force_host_platform_device_count=1 "
                                                  "--xla_backend_optimization_level=0",
        # Not the package's cache (the worker cannot import the package anyway): a student's
        # process must not write programs that another check (or the teacher) would run.
        "ATTENTION_COMPILATION_CACHE": "0",
    }


# ----------------------------------------------------------------------------- a shared cache


CACHE_INSIDE = "/tmp/jax-cache"  # where a worker sees the grading run's compilation cache


@dataclasses.dataclass(frozen=True)
class CacheMount:
    """The compilation cache as one worker gets it: the host folder, writable or not."""

    folder: str
    writable: bool


class CompilationCache:
    """JAX's persistent compilation cache of one grading run, at the bubblewrap level.

    The canary's workers (the model solutions: teacher's code) fill it; :meth:`seal` then makes
    it read-only for good, and every student's worker gets it bound read-only, so that the
    programs a student's code shares with a model solution (the same XLA program, byte for
    byte: a cache key is a hash of the program, the JAX and XLA versions and the flags) are
    loaded instead of compiled. No student can write there (a read-only mount: no poisoning of
    a classmate's executable, no channel between students), and none can list it (the folder
    is ``--x``: an entry opens only by the hash of its program, which only the same program
    gives; the model solutions' compiled programs cannot be browsed). What it still lets a
    student's code learn: whether one of its programs is a model solution's, by timing its
    compilation (``grade_folder(compilation_cache=False)`` turns it off).

    Entries the canary left unfinished (two of its workers writing one entry, a worker killed
    mid-write) are removed by :meth:`seal`. Use as a context manager; the folder is deleted at
    the end.
    """

    def __init__(self):
        import tempfile

        self._root = tempfile.mkdtemp(prefix="attention-grade-cache-")  # 0700: the grader's
        self.folder = os.path.join(self._root, "jax")
        os.mkdir(self.folder)
        # The canary's worker may run under a user id of its own: it writes here through its
        # mount only (the folder above is the grader's alone).
        os.chmod(self.folder, 0o777)
        self.sealed = False

    def __enter__(self) -> CompilationCache:
        return self

    def __exit__(self, *exc) -> None:
        try:
            os.chmod(self.folder, 0o700)
        except OSError:
            pass
        shutil.rmtree(self._root, ignore_errors=True)

    def mount(self) -> CacheMount:
        """The mount for the next worker: writable until :meth:`seal`, read-only after."""
        return CacheMount(self.folder, writable=not self.sealed)

    def seal(self) -> int:
        """No more writing: unreadable entries removed, the rest owned by the grader, ``r--``,
        in a folder ``--x``. Returns the number of entries kept."""
        kept = 0
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            if os.path.islink(path) or not os.path.isfile(path) or not _complete(path):
                _remove(path)
                continue
            if os.geteuid() == 0:
                os.chown(path, 0, 0)
            os.chmod(path, 0o444)
            kept += 1
        if os.geteuid() == 0:
            os.chown(self.folder, 0, 0)
        os.chmod(self.folder, 0o111)
        self.sealed = True
        return kept


def _complete(path: str) -> bool:
    """Whether a cache entry decompresses whole (an entry cut short by a killed or concurrent
    writer does not)."""
    try:
        from jax._src import compilation_cache

        with open(path, "rb") as f:
            compilation_cache.decompress_executable(f.read())
        return True
    except Exception:
        return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


# ----------------------------------------------------------------------------- a cgroup per check


class CheckGroup:
    """A control group for one check, where this process may make one: the memory and the
    number of processes of the whole check bounded (not of each process), and every process
    of the check killed at the end, wherever it went (``setsid``, double fork).

    cgroup v2 (one hierarchy) is used when this process's cgroup can enable the memory and
    pids controllers for its children, else v1's ``memory`` and ``pids`` hierarchies; where
    neither can be written (most non-root setups), :meth:`make` returns None and the limits
    stay per process.
    """

    _counter = itertools.count()

    def __init__(self, folders: list[str]):
        self.folders = folders

    @classmethod
    def make(cls, limits: Limits) -> CheckGroup | None:
        """A new group with ``limits`` (memory_bytes, max_processes), or None."""
        name = f"attention-grade-{os.getpid()}-{next(cls._counter)}"
        settings = _cgroup_settings(limits)
        folders: list[str] = []
        try:
            for parent, values in settings:
                folder = os.path.join(parent, name)
                os.mkdir(folder)
                folders.append(folder)
                for file, value in values.items():
                    with open(os.path.join(folder, file), "w") as f:
                        f.write(value)
        except OSError:
            cls(folders).close()
            return None
        return cls(folders) if folders else None

    def wrap(self, command: list[str]) -> list[str]:
        """``command``, started inside the group (the shell joins it, then execs)."""
        join = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 111; done; '
        procs = [os.path.join(f, "cgroup.procs") for f in self.folders]
        return ["/bin/sh", "-c", join + 'shift ' + str(len(procs) + 1) + '; exec "$@"', "sh",
                *procs, "--", *command]

    def pids(self) -> list[int]:
        """The processes in the group now."""
        try:
            with open(os.path.join(self.folders[0], "cgroup.procs")) as f:
                return [int(line) for line in f if line.strip()]
        except (OSError, ValueError, IndexError):
            return []

    def longest_wait(self, since: dict | None = None) -> float:
        """Seconds the most delayed thread of the group spent ready to run but not running
        (Linux ``schedstat``), since the :meth:`waits` ``since`` when given: large when the
        machine starved the check, near 0 when the check was busy alone or blocked."""
        return longest_wait(self.pids(), since)

    def waits(self) -> dict[str, int]:
        """Nanoseconds each thread of the group has waited to run so far."""
        return waits(self.pids())

    def close(self) -> None:
        """Kill every process in the group, then remove it."""
        import signal
        import time

        for folder in self.folders:
            kill = os.path.join(folder, "cgroup.kill")
            if os.path.exists(kill):
                try:
                    with open(kill, "w") as f:
                        f.write("1")
                except OSError:
                    pass
            for _ in range(200):
                try:
                    with open(os.path.join(folder, "cgroup.procs")) as f:
                        pids = [int(line) for line in f if line.strip()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.01)
            try:
                os.rmdir(folder)
            except OSError:
                pass


def longest_wait(pids: list[int], since: dict | None = None) -> float:
    """The longest run-queue wait, in seconds, of any thread of ``pids`` (since the
    :func:`waits` ``since``: a worker that grades several exercises)."""
    since = since or {}
    return max((wait - since.get(task, 0) for task, wait in waits(pids).items()),
               default=0) / 1e9


def waits(pids: list[int]) -> dict[str, int]:
    """``{"pid/tid": nanoseconds waited to run}`` for every thread of ``pids``."""
    found = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    found[f"{pid}/{task}"] = int(f.read().split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return found


def _cgroup_settings(limits: Limits) -> list[tuple[str, dict[str, str]]]:
    """[(parent folder, {file: value})] for this process's cgroup hierarchy."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return []
    memory, pids = str(limits.memory_bytes), str(limits.max_processes)
    v2 = [path for hid, controllers, path in lines if hid == "0" and controllers == ""]
    if v2 and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        parent = "/sys/fs/cgroup" + v2[0].rstrip("/")
        try:
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                f.write("+memory +pids")
            return [(parent, {"memory.max": memory, "memory.swap.max": "0", "pids.max": pids})]
        except OSError:
            pass
    found = []
    for _, controllers, path in lines:
        for controller, values in (("memory", {"memory.limit_in_bytes": memory}),
                                   ("pids", {"pids.max": pids})):
            root = f"/sys/fs/cgroup/{controller}"
            if controller in controllers.split(",") and os.path.isdir(root):
                found.append((root + path.rstrip("/"), values))
    return found if len(found) == 2 else []


# ----------------------------------------------------------------------------- killing the tree


class Reaper:
    """Kills every process a check started, including those that left its process group.

    At the bubblewrap level killing the namespace's init does it. At the process level, on
    Linux, the grader becomes a subreaper: a child that called ``setsid`` and lost its parent
    is re-parented to the grader instead of init, where :meth:`sweep` finds it.
    """

    # One registry per process: every grading run here knows every worker started, so that
    # one run's sweep never takes another run's worker for an orphan.
    _lock = threading.Lock()
    _active: set[int] = set()

    def __init__(self, adopt_orphans: bool = True):
        self._before = set(_children()) if adopt_orphans and _become_subreaper() else None

    def start(self, spawn):
        """``spawn()`` (a ``subprocess.Popen``) under the lock, so that a sweep never mistakes a
        worker that is being started for an orphan."""
        with self._lock:
            process = spawn()
            self._active.add(process.pid)
        return process

    def finished(self, pid: int) -> None:
        import signal

        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        with self._lock:
            self._active.discard(pid)
        self.sweep()

    def sweep(self) -> None:
        """Kill the grader's adopted orphans (children it did not start as workers)."""
        import signal

        if self._before is None:
            return
        with self._lock:
            for pid in _children():
                if pid in self._active or pid in self._before:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError, PermissionError):
                    pass


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children() -> list[int]:
    """Process ids whose parent is this process (Linux ``/proc``)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found
