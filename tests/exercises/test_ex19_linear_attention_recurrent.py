"""Exercise 19's checker: the model solution passes; each usual mistake fails with its
explanation (attention/exercises/ex19_linear_attention_recurrent.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from attention import exercises
from attention.exercises import ex19_linear_attention_recurrent as ex19
from teachers import solutions

from ._helpers import fails


def test_the_checkers_step_run_over_a_sequence_is_the_quadratic_causal_form():
    """The NumPy step the checker grades with, run from zeros, equals the causal form written
    out from eq. 4: out_t = sum_{s<=t} sim(t, s) v_s / sum_{s<=t} sim(t, s) with
    sim = phi(q_t) . phi(k_s); and its phi is jax.nn.elu + 1."""
    rng = np.random.default_rng(0)
    T, H, Hv = 5, 3, 7
    q, k, v = rng.standard_normal((T, H)), rng.standard_normal((T, H)), rng.standard_normal((T, Hv))
    np.testing.assert_allclose(ex19.phi(q), np.asarray(jax.nn.elu(jnp.asarray(q))) + 1,
                               rtol=1e-6)
    sim_TS = np.tril(ex19.phi(q) @ ex19.phi(k).T)
    want = (sim_TS @ v) / sim_TS.sum(axis=1, keepdims=True)
    S, z, got = np.zeros((H, Hv)), np.zeros(H), []
    for t in range(T):
        out, S, z = ex19.step_reference(S, z, q[t], k[t], v[t])
        got.append(out)
    np.testing.assert_allclose(np.stack(got), want, rtol=1e-10)
    np.testing.assert_allclose(np.stack(got), ex19._parallel_form(q, k, v), rtol=1e-4,
                               atol=1e-5)


def _step(*, phi_q="elu1", phi_k="elu1", before=False, normalise=True, transpose=False,
          update_S=True, update_z=True, order=("out", "S", "z"), softmax=False):
    """A student's step with one chosen mistake."""
    maps = {"elu1": lambda x: jax.nn.elu(x) + 1, "none": lambda x: x, "elu": jax.nn.elu,
            "relu": jax.nn.relu, "exp": jnp.exp}

    def linear_attention_step(S, z, q, k, v):
        fq, fk = maps[phi_q](q), maps[phi_k](k)
        S_new = S + jnp.outer(fk, v) if update_S else S
        z_new = z + fk if update_z else z
        S_read, z_read = (S, z) if before else (S_new, z_new)
        out = fq @ S_read
        if softmax:
            out = jax.nn.softmax(out)
        elif normalise:
            out = out / (fq @ z_read)
        if transpose:
            S_new = S_new.T
        named = {"out": out, "S": S_new, "z": z_new}
        return tuple(named[n] for n in order)

    return linear_attention_step


def test_linear_attention_step_mistakes():
    check = exercises.check_linear_attention_step
    assert check(solutions.linear_attention_step).passed
    assert check(_step()).passed
    fails(check(_step(before=True)), "read from the state before this token is added")
    fails(check(_step(normalise=False)), "misses the normaliser")
    fails(check(_step(phi_q="none")), "your output uses q itself")
    fails(check(_step(phi_q="relu")), "your output uses relu(q)")
    fails(check(_step(phi_q="elu")), "elu(q) without the + 1")
    fails(check(_step(softmax=True)), "applied a softmax")
    fails(check(_step(phi_k="none")), "normaliser z adds k itself")
    fails(check(_step(phi_k="elu")), "normaliser z uses elu(k) without the + 1")
    fails(check(_step(phi_k="relu")), "normaliser z uses relu(k)")
    fails(check(_step(phi_k="exp")), "normaliser z uses exp(k)")
    fails(check(_step(update_z=False)), "normaliser z is not updated")
    fails(check(_step(update_S=False)), "state S is not updated")
    fails(check(_step(transpose=True)), "outer product is transposed", "[Hv, H]")
    fails(check(_step(order=("out", "z", "S"))), "returns (out, z, S)", "(out, S, z)")


def test_a_wrong_feature_map_of_the_key_seen_in_the_state_is_named():
    """z right, S wrong: the state's own message names the feature map."""
    check = exercises.check_linear_attention_step

    @jax.jit
    def linear_attention_step(S, z, q, k, v):
        fk = jax.nn.elu(k) + 1
        S, z = S + jnp.outer(k, v), z + fk
        fq = jax.nn.elu(q) + 1
        return fq @ S / (fq @ z), S, z

    fails(check(linear_attention_step), "your state S adds k itself")


def test_returning_the_wrong_number_of_things_and_a_global_state():
    check = exercises.check_linear_attention_step

    def only_output(S, z, q, k, v):
        return solutions.linear_attention_step(S, z, q, k, v)[0]

    fails(check(only_output), "returned one array of shape [4]", "(out, S, z)")
    kept = {}

    def global_state(S, z, q, k, v):  # ignores the state it is given after the first call
        out, S, z = solutions.linear_attention_step(kept.get("S", S), kept.get("z", z), q, k, v)
        kept.update(S=S, z=z)
        return out, S, z

    fails(check(global_state), "one step is right, but run token by token", "a global state")
