"""The worker's wire format, its loading of a submission, and its transforms."""

import json
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.exercises import worker


def _round_trip(value):
    arrays: list = []
    header = {"op": "x", "value": worker.encode(value, arrays)}
    read, write = os.pipe()
    worker.write_message(write, header, arrays)
    os.close(write)

    def read_exact(n):
        data = b""
        while len(data) < n:
            chunk = os.read(read, n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    try:
        got_header, got_arrays = worker.read_message(read_exact)
    finally:
        os.close(read)
    return worker.decode(got_header["value"], got_arrays, opaque=lambda name: f"<{name}>")


def test_values_survive_the_wire_with_their_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    value = (rng.normal(size=(2, 3, 5)).astype(np.float32), jnp.float32(3.5) * jnp.ones(()),
             [np.arange(4, dtype=np.int32), np.array([True, False])], None, 7, -1.5, "text",
             {"a": np.float64(2.0)}, float("inf"))
    got = _round_trip(value)
    np.testing.assert_array_equal(got[0], value[0])
    assert got[0].dtype == np.float32 and got[1].shape == () and float(got[1]) == 3.5
    np.testing.assert_array_equal(got[2][0], value[2][0])
    assert got[2][1].dtype == bool and got[3] is None and got[4] == 7 and got[5] == -1.5
    assert got[6] == "text" and float(got[7]["a"]) == 2.0 and got[8] == float("inf")


def test_bfloat16_arrives_as_float32_and_other_objects_as_their_type_name():
    got = _round_trip((jnp.ones((2,), jnp.bfloat16), object()))
    assert got[0].dtype == np.float32 and got[1] == "<object>"


def _message(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return struct.pack(">IQ", len(head), len(payload)) + head + payload


def _reader(data: bytes):
    view = memoryview(data)
    position = [0]

    def read_exact(n):
        if position[0] + n > len(view):
            raise EOFError
        chunk = bytes(view[position[0]:position[0] + n])
        position[0] += n
        return chunk

    return read_exact


@pytest.mark.parametrize("header, payload, words", [
    ({"arrays": [["object", [1]]]}, b"x" * 8, "not allowed"),  # pickled objects need "O"
    ({"arrays": [["float32", [4]]]}, b"x" * 8, "longer than the message"),
    ({"arrays": [["float32", [1]]]}, b"x" * 8, "left over"),
    ({"arrays": [["float32", [-1]]]}, b"", "not allowed"),
    ({"arrays": "no"}, b"", "wrong form"),
])
def test_a_malformed_message_is_refused(header, payload, words):
    with pytest.raises(worker.WireError, match=words):
        worker.read_message(_reader(_message(header, payload)))


def test_an_oversized_message_is_refused_before_it_is_read():
    data = struct.pack(">IQ", 10, worker.MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(worker.WireError, match="over the limit"):
        worker.read_message(_reader(data))


def test_decode_refuses_what_it_does_not_know():
    with pytest.raises(worker.WireError):
        worker.decode({"t": "array", "i": 3}, [])
    with pytest.raises(worker.WireError):
        worker.decode({"t": "pickle", "v": "..."}, [])


def test_load_submission_runs_definitions_only_and_notes_what_raised():
    source = (
        "import math\n"
        "x = 1 / 0\n"
        "def f(a):\n    return a + 1\n"
        "print('not run')\n"
        "check_f(f)\n"
        "y = check_f(f)\n"
    )
    namespace, problems = worker.load_submission(source)
    assert namespace["f"](1) == 2 and "math" in namespace and "y" not in namespace
    assert problems == ["line 2 raised ZeroDivisionError: division by zero"]


def test_describe_error_finds_the_line_in_the_students_code():
    namespace, _ = worker.load_submission("def f(q):\n    q = q + 1\n    return q.nope\n")
    with pytest.raises(AttributeError) as info:
        namespace["f"](np.ones(2))
    report = worker.describe_error(info.value, namespace["f"])
    assert report["type"] == "AttributeError"
    assert "line 3 of `f`: `return q.nope`" in report["where"]
    assert report["not_implemented"] is False and report["category"] is None


def test_describe_error_names_the_tracer_mistakes():
    def branchy(x):
        return x if x.sum() > 0 else -x

    with pytest.raises(jax.errors.TracerBoolConversionError) as info:
        worker.apply_transform(branchy, "jit", (jnp.ones(3),), {})
    assert worker.describe_error(info.value, branchy)["category"] == "python control flow"


def test_transforms_agree_with_jax():
    fn = lambda x, scale: jnp.cumsum(x, axis=-2) * scale  # noqa: E731
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    eager = worker.apply_transform(fn, "eager", (x,), {}, (2.0,))
    np.testing.assert_allclose(worker.apply_transform(fn, "jit", (x,), {}, (2.0,)), eager)
    np.testing.assert_allclose(worker.apply_transform(fn, "vmap", (x,), {}, (2.0,)),
                               jax.vmap(lambda x_: fn(x_, 2.0))(x), rtol=1e-6)


def test_influence_is_the_jacobian_maximised_over_batch_and_features():
    # cumsum over positions: output t depends on inputs s <= t only (a causal function).
    fn = lambda x: jnp.cumsum(x, axis=1) * 3.0  # noqa: E731
    x = jax.random.normal(jax.random.key(1), (2, 4, 3))
    got = np.asarray(worker.apply_transform(fn, "influence", (x,), {}))
    jacobian = np.asarray(jax.jacobian(fn)(x))  # [B, T, D, B, S, D]
    # One pull-back per output row t, with a cotangent of ones on out[:, t]: the sum over the
    # batch and the features of that row, then the largest magnitude over the inputs.
    expected = np.abs(jacobian.sum(axis=(0, 2))).max(axis=(1, 3))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.all(np.triu(got, 1) == 0) and np.all(np.diag(got) > 0)


def test_the_lent_model_refuses_sow_weights_and_caps_what_it_sends_back():
    from attention.exercises import remote

    class Model:
        def encode(self, sow_weights=False):
            return np.zeros(1 << 20, np.float32)  # 4 MiB a call

    session = remote.WorkerSession.__new__(remote.WorkerSession)  # the callback logic alone
    sent = []
    session._send = lambda header, arrays: sent.append(header)
    session._callbacks = session._replied = 0
    session._lent = {0: remote.Lent(Model(), ("encode",))}
    call = {"object": 0, "method": "encode", "args": {"t": "tuple", "items": []},
            "kwargs": {"t": "dict", "items": {}}}
    sow = dict(call, kwargs={"t": "dict", "items": {"sow_weights": {"t": "bool", "v": True}}})
    session._answer_callback(sow, [])
    assert sent[-1] == {"op": "callback error", "message":
                        "ValueError: sow_weights is not lent to the submission"}
    with pytest.raises(remote.WorkerFailure, match="replies went over 64 MiB"):
        for _ in range(20):
            session._answer_callback(call, [])
    assert len(sent) == 1 + 17  # 16 replies fit in 64 MiB, the 17th goes over


def _patched_module(monkeypatch):
    monkeypatch.setattr(jnp, "einsum", lambda *args, **kwargs: 0.0)


def _patched_builtin(monkeypatch):
    import builtins

    monkeypatch.setattr(builtins, "pow", lambda base, exponent: 1.0)


def _new_module(monkeypatch):
    import types

    monkeypatch.setitem(__import__("sys").modules, "math", types.SimpleNamespace())


def _jax_flag(monkeypatch):
    jax.config.update("jax_enable_x64", True)
    monkeypatch.callback = lambda: jax.config.update("jax_enable_x64", False)


def _jit_disabled_in_an_open_context(monkeypatch):
    context = jax.disable_jit()
    context.__enter__()
    monkeypatch.callback = lambda: context.__exit__(None, None, None)


def _thread_left_running(monkeypatch):
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    monkeypatch.callback = lambda: (stop.set(), thread.join())


def _numpy_errors(monkeypatch):
    before = np.seterr(all="raise")
    monkeypatch.callback = lambda: np.seterr(**before)


def _signal_handler(monkeypatch):
    import signal

    monkeypatch.setattr(signal, "SIGUSR1", signal.SIGUSR1)  # (no change: the handler below is)
    before = signal.signal(signal.SIGUSR1, lambda *args: None)
    monkeypatch.callback = lambda: signal.signal(signal.SIGUSR1, before)


def _recursion_limit(monkeypatch):
    before = __import__("sys").getrecursionlimit()
    __import__("sys").setrecursionlimit(before + 7)
    monkeypatch.callback = lambda: __import__("sys").setrecursionlimit(before)


@pytest.mark.parametrize("change, key", [
    (_patched_module, "module jax.numpy"), (_patched_builtin, "module builtins"),
    (_new_module, "sys.modules"), (_jax_flag, "jax.config"),
    (_jit_disabled_in_an_open_context, "jax.config"), (_thread_left_running, "threads"),
    (lambda mp: mp.setenv("JAX_ENABLE_X64", "1"), "environment"),
    (lambda mp: mp.chdir("/"), "folder"), (_numpy_errors, "numpy"),
    (_signal_handler, "signal handlers"), (_recursion_limit, "interpreter"),
])
def test_the_fingerprint_names_what_an_exercise_left_behind(change, key):
    # (no Watch here: its audit hook would refuse other hooks in this test process for good)
    worker._warm_up()  # as the worker does before its fingerprint
    baseline = worker.fingerprint()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.callback = lambda: None
        change(monkeypatch)
        try:
            changed = worker._changes(baseline, set())
        finally:
            monkeypatch.callback()
    assert key in changed, changed
    assert worker._changes(baseline, set()) == []  # undone: the same state again


def test_the_audit_hook_notes_processes_and_native_code_and_refuses_new_hooks(tmp_path):
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {os.path.dirname(worker.__file__)!r})\n"
        "import worker\n"
        "watch = worker.Watch()\n"
        "called = []\n"
        "sys.addaudithook(lambda event, args: called.append(event))\n"
        "os.putenv('X', '1')\n"
        "import ctypes\n"
        "print(sorted(watch.seen), called)\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "['ctypes.dlopen', 'os.putenv', 'sys.addaudithook'] []"


def test_the_eager_call_is_compiled_where_it_can_be_and_op_by_op_otherwise():
    traces = []

    def scaled(x, d_k, *, mask=None):
        traces.append(type(x).__name__)
        return jnp.where(mask, x, 0.0) / jnp.sqrt(d_k) if mask is not None else x / d_k

    def branchy(x, threshold):
        return x if float(x.sum()) > threshold else -x  # fine op by op, not under jit

    def broken(x):
        raise ValueError(f"no good for {x.shape}")

    x = jax.random.normal(jax.random.key(2), (3, 5))
    mask = x > 0
    got = worker.compiled_or_eager(scaled, (x, 7), {"mask": mask})
    np.testing.assert_allclose(got, np.where(np.asarray(mask), np.asarray(x), 0) / np.sqrt(7),
                               rtol=1e-6)
    worker.compiled_or_eager(scaled, (x + 1, 7), {"mask": mask})  # same shapes: no new trace
    assert len(traces) == 1 and traces[0] != "ArrayImpl"  # traced once, as one program
    np.testing.assert_allclose(worker.compiled_or_eager(branchy, (x, 1e9), {}), -x)
    with pytest.raises(ValueError, match=r"no good for \(3, 5\)"):  # the op-by-op error
        worker.compiled_or_eager(broken, (x,), {})


# ----------------------------------------------------------------------------- the shortcut guard


@pytest.fixture(scope="module")
def guard():
    # One Guard (one audit hook) for this test process: a hook cannot be removed.
    yield worker.Guard()


def _holders(obj) -> list[str]:
    import sys

    return sorted(name for name, module in list(sys.modules.items())
                  if any(v is obj for v in list(getattr(module, "__dict__", {}).values())))


def _tripped(guard, use) -> tuple[str, list[str]]:
    """(the error's message, the names recorded) of a use, its error caught as a student would."""
    guard.used = []
    try:
        use()
    except worker.ShortcutError as e:
        return str(e), list(guard.used)
    return "", list(guard.used)


SOFTMAX_ROUTES = {
    "attribute": lambda x: jax.nn.softmax(x),
    "getattr of a built string": lambda x: getattr(jax.nn, "soft" + "max")(x),
    "importlib": lambda x: __import__("importlib").import_module("jax.nn").softmax(x),
    "vars": lambda x: vars(jax.nn)["softmax"](x),
    "__import__": lambda x: __import__("jax").nn.softmax(x),
    "eval": lambda x: eval("jax.nn.softmax")(x),
    "private module": lambda x: __import__("jax._src.nn.functions",
                                           fromlist=["softmax"]).softmax(x),
    "another library's alias": lambda x: __import__("flax.nnx", fromlist=["nnx"]).softmax(x),
    "functools.partial": lambda x: __import__("functools").partial(jax.nn.softmax, axis=-1)(x),
    "under jit": lambda x: jax.jit(lambda y: jax.nn.softmax(y))(x),
    "under vmap": lambda x: jax.vmap(jax.nn.softmax)(x),
    "through vjp": lambda x: jax.vjp(jax.nn.softmax, x)[0],
}


def test_a_forbidden_function_trips_however_it_is_reached_and_is_recorded(guard):
    # (one arming for every route: arming and disarming each walk every loaded module)
    x = jnp.arange(15.0).reshape(3, 5)
    original = jax.nn.softmax
    holders = _holders(original)
    assert {"jax.nn", "jax._src.nn.functions"} <= set(holders)
    guard.arm(["jax.nn.softmax"])
    try:
        assert _holders(original) == []
        tripped = {route: _tripped(guard, lambda use=use: use(x))
                   for route, use in SOFTMAX_ROUTES.items()}
    finally:
        guard.disarm()
    for route, (message, used) in tripped.items():
        assert message == "jax.nn.softmax does this exercise for you; write it yourself", route
        assert used == ["jax.nn.softmax"], route  # recorded although the error was caught
    # the originals back everywhere; nothing else armed: the next exercise may use softmax
    assert jax.nn.softmax is original and _holders(original) == holders
    np.testing.assert_allclose(jax.nn.softmax(x), np.exp(x) / np.exp(x).sum(-1, keepdims=True),
                               rtol=1e-6)


def test_a_reference_captured_at_load_time_is_the_tripwire(guard):
    guard.arm(["jax.nn.softmax"])
    try:
        namespace, problems = worker.load_submission(
            "import jax\nimport functools\n\n"
            "def f(x, softmax=jax.nn.softmax):\n    return softmax(x)\n\n"
            "g = functools.partial(getattr(jax.nn, 'soft' + 'max'), axis=-1)\n")
        assert problems == []
        for name in ("f", "g"):
            assert _tripped(guard, lambda fn=namespace[name]: fn(jnp.ones(3)))[1] == [
                "jax.nn.softmax"], name
    finally:
        guard.disarm()


CLASS_ROUTES = {
    "instantiation": lambda nnx: nnx.MultiHeadAttention(2, 4, rngs=nnx.Rngs(0)),
    "getattr of a built string": lambda nnx: getattr(nnx, "Multi" + "HeadAttention")(2, 4),
    "class statement": lambda nnx: exec("class Mine(nnx.MultiHeadAttention):\n    pass\n",
                                        {"nnx": nnx}),
    "type()": lambda nnx: type("Mine", (nnx.MultiHeadAttention,), {}),
    "an unbound method": lambda nnx: nnx.MultiHeadAttention.__call__,
    "isinstance": lambda nnx: isinstance(object(), nnx.MultiHeadAttention),
    # the original class itself, found without a module attribute
    "found among the subclasses": lambda nnx: next(
        c for c in nnx.Module.__subclasses__() if c.__name__ == "MultiHeadAttention")(2, 4),
    "subclass of the one found": lambda nnx: type("Mine", tuple(
        c for c in nnx.Module.__subclasses__() if c.__name__ == "MultiHeadAttention"), {}),
}


def test_a_forbidden_class_trips_when_made_subclassed_or_read(guard):
    from flax import nnx

    original = nnx.MultiHeadAttention
    guard.arm(["flax.nnx.MultiHeadAttention"])
    try:
        tripwire = nnx.MultiHeadAttention
        # what the worker reads of a name the submission imports trips nothing
        assert (tripwire.__module__, tripwire.__name__) == (original.__module__,
                                                              original.__name__)
        assert _tripped(guard, lambda: None)[1] == []
        tripped = {route: _tripped(guard, lambda use=use: use(nnx))
                   for route, use in CLASS_ROUTES.items()}
    finally:
        guard.disarm()
    for route, (message, used) in tripped.items():
        assert message.startswith("flax.nnx.MultiHeadAttention does this exercise for you"), (
            route, message)
        assert used == ["flax.nnx.MultiHeadAttention"], route
    assert nnx.MultiHeadAttention is original
    assert "__init_subclass__" not in vars(original)  # its own attributes back
    assert issubclass(type("Mine", (nnx.MultiHeadAttention,), {}), original)  # usable again
    layer = original(6, 6, qkv_features=6, out_features=6, decode=False, rngs=nnx.Rngs(0))
    assert layer(jnp.ones((1, 3, 6))).shape == (1, 3, 6)


def test_disarming_restores_every_holder_and_the_fingerprint_matches(guard):
    import sys
    import types

    worker._warm_up()
    baseline = worker.fingerprint()
    original = jax.nn.standardize
    guard.arm(["jax.nn.standardize", "flax.nnx.MultiHeadAttention"])
    late = types.ModuleType("late_import")  # a module imported while armed binds the tripwire
    late.standardize = jax.nn.standardize
    sys.modules["late_import"] = late
    try:
        assert late.standardize is not original
        now = worker.fingerprint()
        assert now["module jax.nn"] != baseline["module jax.nn"]
    finally:
        guard.disarm()
        del sys.modules["late_import"]
    assert late.standardize is original
    # This test's process is pytest's, shared with other tests: their threads (Orbax's, a
    # batch stream's) may start or end meanwhile. The worker's own process has none of them.
    changed = worker._changes(baseline, set())
    assert [c for c in changed if c not in ("threads", "OS threads")] == [], changed


def test_a_reference_kept_from_before_arming_trips_too(guard):
    """A function kept where no module attribute shows it (an earlier exercise's hiding
    place): the function itself trips, its code swapped while armed; a jitted one through
    the function it wraps."""
    kept = {"softmax": jax.nn.softmax, "standardize": jax.nn.standardize}
    x = jnp.arange(15.0).reshape(3, 5)
    guard.arm(["jax.nn.softmax", "jax.nn.standardize"])
    try:
        tripped = [_tripped(guard, lambda: kept["softmax"](x)),
                   _tripped(guard, lambda: kept["standardize"](x + 1.0))]
    finally:
        guard.disarm()
    assert tripped[0][1] == ["jax.nn.softmax"] and tripped[1][1] == ["jax.nn.standardize"]
    assert "does this exercise for you" in tripped[0][0]
    np.testing.assert_allclose(kept["softmax"](x), np.exp(x) / np.exp(x).sum(-1, keepdims=True),
                               rtol=1e-6)  # its own code back
    mean = np.asarray(x).mean(-1, keepdims=True)
    np.testing.assert_allclose(kept["standardize"](x), (x - mean) / np.asarray(x).std(
        -1, keepdims=True), rtol=1e-4, atol=1e-4)


def test_the_garbage_collectors_lists_are_refused_while_armed(guard):
    import gc

    guard.arm(["jax.nn.softmax"])
    try:
        for search in (gc.get_objects, lambda: gc.get_referrers(jax.nn),
                       lambda: gc.get_referents(jax.nn)):
            with pytest.raises(RuntimeError, match=r"gc\.get_\w+ is refused while grading an "
                               r"exercise that forbids jax\.nn\.softmax"):
                search()
    finally:
        guard.disarm()
    assert jax.nn in gc.get_referents(vars(jax))  # open again


def test_a_name_that_does_not_resolve_is_reported_and_nothing_else_changes(guard):
    assert worker.resolve("jax.nn.no_such_function") is None
    assert worker.resolve("no_such_package.f") is None
    assert worker.resolve("jax.nn.softmax") is jax.nn.softmax
    assert guard.arm(["jax.nn.no_such_function"]) == ["jax.nn.no_such_function"]
    guard.disarm()
    assert _tripped(guard, lambda: jax.nn.softmax(jnp.ones(3)))[1] == []


def test_the_places_noted_before_student_code_serve_arming_and_disarming(guard):
    # Last in this file: the guard keeps its index. Before any student code the worker notes
    # where the forbidden objects sit (Guard.index); arming then visits those places and the
    # modules imported since, and must reach every holder the full search reaches.
    import sys
    import types

    original = jax.nn.softmax
    holders = _holders(original)
    guard.index(["jax.nn.softmax", "flax.nnx.LayerNorm"])
    late = types.ModuleType("late_after_index")  # imported after the index, before arming
    late.softmax = original
    sys.modules["late_after_index"] = late
    try:
        guard.arm(["jax.nn.softmax"])
        try:
            assert _holders(original) == []  # no module shows the original while armed
            tripwire = guard._armed["jax.nn.softmax"]
            assert sorted(set(holders) | {"late_after_index"}) == _holders(tripwire)
            assert _tripped(guard, lambda: vars(jax.nn)["softmax"](jnp.ones(3)))[1] == [
                "jax.nn.softmax"]
        finally:
            guard.disarm()
        assert _holders(original) == sorted(set(holders) | {"late_after_index"})
    finally:
        del sys.modules["late_after_index"]


def test_a_replaced_sys_audit_does_not_hide_the_use(guard):
    import sys

    guard.arm(["jax.nn.softmax"])
    real = sys.audit
    sys.audit = lambda *args: None  # a student silencing the audit events
    try:
        assert _tripped(guard, lambda: jax.nn.softmax(jnp.ones(3)))[1] == ["jax.nn.softmax"]
    finally:
        sys.audit = real
        guard.disarm()
