"""`repro bias`, `repro constants`, `repro theory`: the JSON contract, an independent check, bad input."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from synthetic.bandit import TabularPolicy
from synthetic.exact import DiscreteTask, enumerated_gradient


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bias_json_agrees_with_the_enumeration_oracle(repro, seed):
    rng = np.random.default_rng(seed)
    k, n, eps, kappa = int(rng.integers(2, 5)), int(rng.integers(2, 4)), 0.2, float(rng.choice([0.0, 0.3]))
    theta, beta, ref = rng.normal(size=k), rng.normal(size=k) * 0.5, rng.normal(size=k)
    text = lambda x: ",".join(repr(float(v)) for v in x)
    code, out, err = repro("bias", "--theta", text(theta), "--beta", text(beta), "--correct", "0", "--group", n,
                           "--eps", eps, "--kl", kappa, "--ref", text(ref), "--points", 8, "--json")
    assert code == 0, err
    result = json.loads(out)
    reward = jnp.zeros((1, k)).at[0, 0].set(1.0)
    task = DiscreteTask(TabularPolicy(), reward, jnp.ones(1), jnp.asarray(ref), n, eps, kappa)
    g_stale = enumerated_gradient(task, jnp.asarray(theta), jnp.asarray(beta))
    g_on = enumerated_gradient(task, jnp.asarray(theta), jnp.asarray(theta))
    np.testing.assert_allclose(result["g_stale"], g_stale, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(result["g_on"], g_on, rtol=1e-6, atol=1e-12)
    assert result["bias_norm"] == pytest.approx(float(np.linalg.norm(g_stale - g_on)), rel=1e-6)
    assert result["stale_drift"] == pytest.approx(float(np.linalg.norm(theta - beta)), rel=1e-12)
    assert result["bias_norm"] <= result["bound"]
    assert result["bias_norm"] <= result["pointwise_bound_alt"] + 1e-12
    assert result["C_b"] == pytest.approx(2 * result["G"] * result["L_D"] + result["L_beta"])


def test_issue_example_and_table(repro):
    args = ("bias", "--theta", "0.5,0,-0.5", "--beta", "0,0,0", "--correct", "0", "--group", "4", "--eps", "0.2",
            "--kl", "0.0", "--ref", "0,0,0")
    code, out, _ = repro(*args, "--json")
    result = json.loads(out)
    assert code == 0
    assert {"bias_norm", "g_stale", "g_on", "stale_drift", "G", "L_D", "L_beta", "C_b", "bound"} <= set(result)
    code, out, _ = repro(*args)
    assert code == 0 and "Lemma 1 bound" in out


def test_constants_json_and_table(repro):
    code, out, err = repro("constants", "--task", "bandit", "--arms", 3, "--group", 3, "--eps", 0.2, "--kl", 0.1,
                           "--radius", 0.1, "--points", 8, "--steps", 5, "--json")
    assert code == 0, err
    result = json.loads(out)
    for name in ("G", "U", "L_D", "L_beta"):
        assert 0 < result[name] <= result[f"{name}_analytic"]
    code, out, err = repro("constants", "--task", "contextual", "--arms", 3, "--group", 2, "--prompts", 3, "--dim", 2,
                           "--radius", 0.1, "--points", 4, "--steps", 3)
    assert code == 0, err
    assert "analytic" in out and "L_beta" in out


def test_theory_prints_checked_derivations(repro):
    code, out, _ = repro("theory")
    assert code == 0 and "sympy ✓" in out and "FAILED" not in out


@pytest.mark.parametrize("args, named", [
    (("--theta", "1", "--beta", "1"), "--theta"),
    (("--theta", "1,2", "--beta", "1,2,3"), "--beta"),
    (("--theta", "1,nan", "--beta", "1,2"), "nan"),
    (("--theta", "1,2", "--beta", "1,2", "--correct", "2"), "arm 2"),
    (("--theta", "1,2", "--beta", "1,2", "--eps", "0"), "--eps"),
    (("--theta", "1,2", "--beta", "1,2", "--eps", "-0.1"), "--eps"),
    (("--theta", "1,2", "--beta", "1,2", "--group", "1"), "--group"),
    (("--theta", "1,2", "--beta", "1,2", "--ref", "0"), "--ref"),
])
def test_bad_bias_input_is_one_named_line(repro, args, named):
    code, out, err = repro("bias", *args)
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and named in lines[0]


@pytest.mark.parametrize("args, named", [
    (("--arms", "1"), "--arms"), (("--group", "1"), "--group"), (("--radius", "0"), "--radius"),
    (("--eps", "nan"), "--eps"), (("--correct", "7"), "arm 7"),
])
def test_bad_constants_input_is_one_named_line(repro, args, named):
    code, _, err = repro("constants", "--task", "bandit", *args)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and named in lines[0]
