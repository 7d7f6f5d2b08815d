"""Adversarial inputs to the numerical API (issue 15): bad, extreme or merely odd values, table-driven.

Every case is one row: the call, and what it must give. Refusals assert the exception class and a
message that starts with (or names) the parameter; returned values are checked to be finite and right;
warnings are asserted by class and text. Classes (issue 15): 1 non-finite / out of range, 2 float32
limits, 5 zero-size arrays, lists, float16, 6 silent non-results. Float32 (the default) throughout,
where those limits bite.
"""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _checks, _linear, dynamics, noise, spectrum, theory, tune
from daedyn.dynamics import _matrix_reference as ref  # the reference paths (private)
from daedyn.tune import DynamicsRoute

NAN, INF = math.nan, math.inf
HUGE = 1e300  # valid (finite, in range) but not a float32
TINY = 1e-60  # valid, nonzero, flushes to 0 in float32

# ------------------------------------------------------------------------------------------------
# Class 1 and 2 for the closed forms: every numeric argument of every function, through a table of
# (valid call, kind of each argument); each kind has its bad values.

BAD = {
    "nonneg": [NAN, INF, -1.0, HUGE],          # [0, inf)
    "pos": [NAN, INF, 0.0, -1.0, HUGE],        # (0, inf)
    "real": [NAN, INF, -INF, HUGE],            # any finite real
    "fraction": [NAN, 0.0, 1.0, 1.5],          # (0, 1)
}

THEORY = {
    "dae_trajectory": (dict(t=1.0, lam=1.0, eps=0.5, w1=0.1, w2=0.2, tau=1.0),
                       dict(t="nonneg", lam="nonneg", eps="nonneg", w1="real", w2="real", tau="pos")),
    "dae_weights": (dict(t=1.0, lam=1.0, eps=0.5, w1=0.1, w2=0.2, tau=1.0),
                    dict(t="nonneg", lam="nonneg", eps="nonneg", w1="real", w2="real", tau="pos")),
    "dae_learning_time": (dict(fraction=0.5, lam=1.0, eps=0.5, w1=0.1, w2=0.2, tau=1.0),
                          dict(fraction="fraction", lam="nonneg", eps="nonneg", w1="real", w2="real",
                               tau="pos")),
    "small_init_trajectory": (dict(t=1.0, lam=1.0, eps=0.5, gamma=0.1, w0=1e-3, tau=1.0, n=1.0),
                              dict(t="nonneg", lam="nonneg", eps="nonneg", gamma="nonneg", w0="nonneg",
                                   tau="pos", n="pos")),
    "learning_time": (dict(fraction=0.5, lam=1.0, eps=0.5, gamma=0.1, w0=1e-3, tau=1.0, n=1.0),
                      dict(fraction="fraction", lam="nonneg", eps="nonneg", gamma="nonneg", w0="nonneg",
                           tau="pos", n="pos")),
    "fixed_point": (dict(lam=1.0, eps=0.5, gamma=0.1, n=1.0),
                    dict(lam="nonneg", eps="nonneg", gamma="nonneg", n="pos")),
    "equivalent_gamma": (dict(lam=1.0, eps=0.5, n=1.0), dict(lam="nonneg", eps="nonneg", n="pos")),
    "learning_rate_ratio": (dict(lam=1.0, eps=0.5, gamma=0.1, n=1.0),
                            dict(lam="nonneg", eps="nonneg", gamma="nonneg", n="pos")),
    "optimal_learning_rates": (dict(lam=1.0, eps=0.5, gamma=0.1, tau=1.0, n=1.0),
                               dict(lam="nonneg", eps="nonneg", gamma="nonneg", tau="pos", n="pos")),
    "scalar_loss": (dict(w1=0.5, w2=0.5, lam=1.0, eps=0.5, gamma=0.1, tau=1.0, n=1.0),
                    dict(w1="real", w2="real", lam="nonneg", eps="nonneg", gamma="nonneg", tau="pos",
                         n="pos")),
}

# The noise level eps = n s^2 is one spelling, daedyn.noise.eps_of (the former theory.variance_eps,
# gaussian_eps and laplace_eps): each argument refused by name, through the constructor that takes it.
EPS_OF = {
    "var": (lambda v: noise.eps_of(noise.Noise("custom", v, None), 10.0), "nonneg"),
    "sigma2": (lambda v: noise.eps_of(noise.gaussian(v), 10.0), "nonneg"),
    "b": (lambda v: noise.eps_of(noise.laplace(v), 10.0), "nonneg"),
    "n": (lambda v: noise.eps_of(noise.gaussian(0.5), v), "pos"),
}


@pytest.mark.parametrize("arg,bad", [pytest.param(a, b, id=f"eps_of-{a}={b}")
                                     for a, (_, kind) in EPS_OF.items() for b in BAD[kind]])
def test_eps_of_refuses_bad_numbers_by_name(arg, bad):
    # laplace(b) refuses a b whose variance 2 b**2 leaves the dtype by naming that variance
    with pytest.raises(ValueError, match=rf"^({arg}|the variance 2 \* {arg}\*\*2) (must lie in|= )"):
        EPS_OF[arg][0](bad)


def test_eps_of_valid_rows_are_finite():
    assert all(np.isfinite(float(call(0.5))) for call, _ in EPS_OF.values())


def _call(fn_name, args):
    fn = getattr(theory, fn_name)
    if fn_name in ("small_init_trajectory", "learning_time"):
        kw = {k: args.pop(k) for k in ("w0", "tau", "n")}
        return fn(*args.values(), **kw)
    if fn_name in ("learning_rate_ratio", "optimal_learning_rates"):  # n is keyword-only there
        n = args.pop("n")
        return fn(*args.values(), n=n)
    return fn(*args.values())


def _theory_rows():
    for fn_name, (valid, kinds) in THEORY.items():
        for arg, kind in kinds.items():
            for bad in BAD[kind]:
                yield pytest.param(fn_name, valid, arg, bad, id=f"{fn_name}-{arg}={bad}")


@pytest.mark.parametrize("fn_name,valid,arg,bad", list(_theory_rows()))
def test_theory_refuses_bad_numbers_by_name(fn_name, valid, arg, bad):
    args = dict(valid, **{arg: bad})
    with pytest.raises(ValueError, match=rf"^{arg} (must lie in|= )"):
        _call(fn_name, args)


@pytest.mark.parametrize("fn_name", list(THEORY))
def test_theory_valid_row_is_finite(fn_name):
    """The valid call of each row works: the refusals above are about the one bad argument."""
    out = _call(fn_name, dict(THEORY[fn_name][0]))
    assert all(np.all(np.isfinite(np.asarray(o))) for o in jax.tree_util.tree_leaves(out))


# ------------------------------------------------------------------------------------------------
# Refusals elsewhere: (id, call, exception, message pattern naming the parameter)

def _spec():
    return spectrum.compute_spectrum(np.eye(3))


def _problem():
    return tune.problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)


W1, W2 = jnp.full((1, 2), 0.1), jnp.full((2, 1), 0.1)
LAM2 = jnp.array([2.0, 1.0])

REFUSED = [
    # --- class 2: products and intermediates that leave float32 ---------------------------------
    ("dae_w1w2_overflow", lambda: theory.dae_trajectory(0.0, 1.0, 0.0, 1e30, 1e30), ValueError,
     r"^\(w1 \+ w2\)\*\*2 / 2 = 2e\+60 is outside the range of float32.*float64"),
    ("dae_w1w2_underflow", lambda: theory.dae_trajectory(10.0, 1.0, 0.0, 1e-30, 1e-30), ValueError,
     r"^\(w1 \+ w2\)\*\*2 / 2 = 2e-60 is outside the range of float32.*jax_enable_x64"),
    ("dae_c_squared_overflow", lambda: theory.dae_trajectory(1.0, 1.0, 0.0, 1e10, 1e15), ValueError,
     r"\(w2\*\*2 - w1\*\*2\)\*\*2 / 4"),
    ("weights_w1w2_overflow", lambda: theory.dae_weights(1.0, 1.0, 0.0, 3e19, 3e19), ValueError,
     r"^\(w1 \+ w2\)"),
    ("dae_lt_underflow", lambda: theory.dae_learning_time(0.5, 1.0, 0.0, 1e-25, 1e-25), ValueError,
     r"^\(w1 \+ w2\)"),
    ("small_init_w0_underflow", lambda: theory.small_init_trajectory(1.0, 1.0, w0=TINY), ValueError,
     r"^w0 = 1e-60 is outside the range of float32"),
    ("lam_subnormal", lambda: theory.fixed_point(1e-40), ValueError, r"^lam = 1e-40 is outside"),
    ("lt_w0_underflow", lambda: theory.learning_time(0.5, 1.0, w0=TINY), ValueError, r"^w0 ="),
    ("eps_product_overflow", lambda: noise.eps_of(noise.gaussian(1e30), 1e10), ValueError,
     r"^eps is not finite.*float32.*float64"),
    ("scalar_loss_overflow", lambda: theory.scalar_loss(1e20, 1e20, 1.0), ValueError,
     r"^scalar_loss is not finite"),
    ("gaussian_huge", lambda: noise.gaussian(HUGE), ValueError, r"^sigma2 = 1e\+300 is outside.*float32"),
    ("laplace_variance_overflow", lambda: noise.laplace(1e20), ValueError, r"^the variance 2 \* b\*\*2"),
    ("scalar_gd_lam_huge", lambda: dynamics.scalar_gd(HUGE, 0.0, 0.1, 0.1, alpha=0.1, epochs=1), ValueError,
     r"^lam = 1e\+300"),
    ("scalar_gd_w_tiny", lambda: dynamics.scalar_gd(1.0, 0.0, TINY, 0.1, alpha=0.1, epochs=1), ValueError,
     r"^w1 = 1e-60"),
    ("scalar_flow_tau_huge", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, tau=HUGE),
     ValueError, r"^tau"),
    ("matrix_gd_eps_huge", lambda: dynamics.matrix_gd(LAM2, W1, W2, eps=HUGE, alpha=0.1, n=1, epochs=1),
     ValueError, r"^eps = 1e\+300"),
    ("matrix_flow_w_huge", lambda: dynamics.matrix_flow([0.0, 1.0], LAM2, np.full((1, 2), 1e299), W2,
                                                        tau=1.0, n=1, dt=0.1), ValueError, r"^w1 ="),
    ("sigma_overflow_float32", lambda: spectrum.second_moment(np.full((4, 2), 1e20, np.float32)),
     ValueError, r"^Sigma = X\^T X overflowed float32.*accumulate_dtype=jnp.float64"),
    ("eigvals_overflow_float32", lambda: spectrum.compute_spectrum(np.full((4, 2), 1e20),
                                                                   accumulate_dtype=np.float64),
     ValueError, r"eigenvalues of Sigma overflowed float32"),
    # --- class 1: spectrum and noise ----------------------------------------------------------------
    ("spectrum_nan_numpy", lambda: spectrum.compute_spectrum(np.array([[NAN, 1.0], [1.0, 2.0]])),
     ValueError, r"^x must be finite"),
    ("spectrum_inf_jax", lambda: spectrum.compute_spectrum(jnp.array([[INF, 1.0], [1.0, 2.0]])),
     ValueError, r"^x must be finite"),
    ("spectrum_neg_inf_float64", lambda: spectrum.compute_spectrum(np.array([[-INF, 1.0]]),
                                                                   accumulate_dtype=np.float64),
     ValueError, r"^x must be finite"),
    ("second_moment_nan", lambda: spectrum.second_moment(jnp.array([[NAN, 1.0]])), ValueError,
     r"^x must be finite"),
    ("second_moment_nan_chunks", lambda: spectrum.second_moment(
        np.vstack([np.ones((5, 2)), [[1.0, NAN]]]), chunk_size=2), ValueError, r"^x must be finite"),
    ("projected_nan", lambda: spectrum.projected_second_moment(_spec(), np.array([[NAN, 1.0, 0.0]])),
     ValueError, r"^x must be finite"),
    ("projected_inf_jax", lambda: spectrum.projected_second_moment(_spec(), jnp.array([[INF, 1.0, 0.0]])),
     ValueError, r"^x must be finite"),
    ("projected_wrong_d", lambda: spectrum.projected_second_moment(_spec(), np.ones((2, 2))), ValueError,
     r"^x has D = 2"),
    ("spectrum_1d", lambda: spectrum.compute_spectrum(np.ones(3)), ValueError, r"^x must have shape"),
    ("spectrum_no_rows", lambda: spectrum.compute_spectrum(np.ones((0, 3))), ValueError,
     r"^x must have shape \(N, D\) with N, D >= 1"),
    ("spectrum_no_columns", lambda: spectrum.compute_spectrum(np.ones((3, 0))), ValueError, r"^x must have"),
    ("spectrum_complex", lambda: spectrum.compute_spectrum(np.ones((2, 2), complex)), ValueError,
     r"^x must be a real numeric array"),
    ("spectrum_strings", lambda: spectrum.compute_spectrum(np.array([["a", "b"]])), ValueError,
     r"^x must be a real numeric array"),
    ("spectrum_chunk_0", lambda: spectrum.compute_spectrum(np.eye(2), chunk_size=0), ValueError,
     r"^chunk_size"),
    ("spectrum_chunk_inf", lambda: spectrum.compute_spectrum(np.eye(2), chunk_size=INF), ValueError,
     r"^chunk_size"),
    ("spectrum_int_dtype", lambda: spectrum.compute_spectrum(np.eye(2), accumulate_dtype=np.int32),
     ValueError, r"^accumulate_dtype"),
    ("sigma_nan", lambda: spectrum.spectrum_from_second_moment(np.array([[NAN, 0.0], [0.0, 1.0]]), n=2),
     ValueError, r"^sigma must be finite"),
    ("sigma_empty", lambda: spectrum.spectrum_from_second_moment(np.ones((0, 0)), n=2), ValueError,
     r"^sigma must be a non-empty"),
    ("sigma_not_square", lambda: spectrum.spectrum_from_second_moment(np.ones((2, 3)), n=2), ValueError,
     r"^sigma must be a square"),
    ("sigma_n_0", lambda: spectrum.spectrum_from_second_moment(np.eye(2), n=0), ValueError, r"^n must"),
    ("sigma_n_inf", lambda: spectrum.spectrum_from_second_moment(np.eye(2), n=INF), ValueError, r"^n must"),
    ("projected_sigma_inf", lambda: spectrum.projected_from_second_moment(_spec(), np.full((3, 3), INF)),
     ValueError, r"^sigma must be finite"),
    ("gaussian_inf", lambda: noise.gaussian(INF), ValueError, r"^sigma2 must lie in \[0, inf\); got inf"),
    ("gaussian_nan", lambda: noise.gaussian(NAN), ValueError, r"^sigma2 must lie"),
    ("gaussian_negative", lambda: noise.gaussian(-0.1), ValueError, r"^sigma2 must lie"),
    ("gaussian_array_inf", lambda: noise.gaussian(np.array([0.1, INF])), ValueError, r"^sigma2 must lie"),
    ("laplace_inf", lambda: noise.laplace(INF), ValueError, r"^b must lie"),
    ("laplace_negative", lambda: noise.laplace(-1.0), ValueError, r"^b must lie"),
    ("custom_variance_0", lambda: noise.custom(lambda k, s, d: jr.normal(k, s, d), 0.0), ValueError,
     r"^variance must lie"),
    ("custom_variance_inf", lambda: noise.custom(lambda k, s, d: jr.normal(k, s, d), INF), ValueError,
     r"^variance must lie"),
    ("custom_not_callable", lambda: noise.custom(3.0, 1.0), ValueError, r"^sample_fn must be callable"),
    ("with_variance_nan", lambda: noise.gaussian(1.0).with_variance(NAN), ValueError, r"^variance must lie"),
    ("with_variance_negative", lambda: noise.laplace(1.0).with_variance(-2.0), ValueError,
     r"^variance must lie"),
    ("as_noise_unknown", lambda: noise.as_noise("uniform"), ValueError, r"^noise must be"),
    ("as_noise_bad_variance", lambda: noise.as_noise("gaussian", INF), ValueError, r"^variance must lie"),
    ("as_noise_type", lambda: noise.as_noise(3), ValueError, r"^noise must be"),
    ("eps_of_n_0", lambda: noise.eps_of(noise.gaussian(1.0), 0), ValueError, r"^n must lie"),
    ("eps_of_none_n_inf", lambda: noise.eps_of(None, INF), ValueError, r"^n must lie"),
    # --- dynamics: scalar ---------------------------------------------------------------------------
    ("gd_alpha_0", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.0, epochs=1), ValueError,
     r"^alpha must lie"),
    ("gd_alpha_inf", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=INF, epochs=1), ValueError,
     r"^alpha must lie"),
    ("gd_eps_nan", lambda: dynamics.scalar_gd(1.0, NAN, 0.1, 0.1, alpha=0.1, epochs=1), ValueError,
     r"^eps must lie"),
    ("gd_lam_inf", lambda: dynamics.scalar_gd(INF, 0.0, 0.1, 0.1, alpha=0.1, epochs=1), ValueError,
     r"^lam must lie"),
    ("gd_gamma_neg", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, gamma=-1.0, epochs=1),
     ValueError, r"^gamma must lie"),
    ("gd_n_0", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, n=0, epochs=1), ValueError,
     r"^n must lie"),
    ("gd_w2_neg_inf", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, -INF, alpha=0.1, epochs=1), ValueError,
     r"^w2 must lie"),
    ("gd_epochs_float", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2.0), ValueError,
     r"^epochs must be an integer"),
    ("gd_epochs_bool", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=True), ValueError,
     r"^epochs must be an integer"),
    ("gd_save_every_0", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2, save_every=0),
     ValueError, r"^save_every must be"),
    ("gd_unroll_0", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2, unroll=0),
     ValueError, r"^unroll must be"),
    ("gd_backend", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2, backend="cuda"),
     ValueError, r"^backend must be one of"),
    ("gd_observables", lambda: dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2,
                                                  observables=("mapping",)), ValueError, r"^observables"),
    ("gd_broadcast", lambda: dynamics.scalar_gd(np.ones(3), np.ones(2), 0.1, 0.1, alpha=0.1, epochs=1),
     ValueError, r"lam\(3,\), eps\(2,\)"),
    ("gd_string", lambda: dynamics.scalar_gd("1", 0.0, 0.1, 0.1, alpha=0.1, epochs=1), ValueError,
     r"^lam must be numeric"),
    ("flow_ts_1e9_default_dt", lambda: dynamics.scalar_flow([0.0, 1e9], 1.0, 0.0, 0.1, 0.1), ValueError,
     r"^ts/dt: the save interval ending at ts\[1\] = 1e\+09 needs 2e\+10 RK4 steps"),
    ("flow_ts_empty", lambda: dynamics.scalar_flow([], 1.0, 0.0, 0.1, 0.1, dt=0.1), ValueError,
     r"^ts must be a non-empty 1-d"),
    ("flow_ts_2d", lambda: dynamics.scalar_flow([[0.0, 1.0]], 1.0, 0.0, 0.1, 0.1, dt=0.1), ValueError,
     r"^ts must be a non-empty 1-d"),
    ("flow_ts_decreasing", lambda: dynamics.scalar_flow([1.0, 0.5], 1.0, 0.0, 0.1, 0.1, dt=0.1), ValueError,
     r"^ts must be non-decreasing"),
    ("flow_ts_negative", lambda: dynamics.scalar_flow([-1.0, 0.5], 1.0, 0.0, 0.1, 0.1, dt=0.1), ValueError,
     r"^ts must lie"),
    ("flow_ts_nan", lambda: dynamics.scalar_flow([0.0, NAN], 1.0, 0.0, 0.1, 0.1, dt=0.1), ValueError,
     r"^ts must lie"),
    ("flow_ts_inf", lambda: dynamics.scalar_flow([0.0, INF], 1.0, 0.0, 0.1, 0.1, dt=0.1), ValueError,
     r"^ts must lie"),
    ("flow_dt_0", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, dt=0.0), ValueError,
     r"^dt must be"),
    ("flow_dt_nan", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, dt=NAN), ValueError,
     r"^dt must be"),
    ("flow_dt_inf", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, dt=INF), ValueError,
     r"^dt must be"),
    ("flow_tau_0", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, tau=0.0), ValueError,
     r"^tau must lie"),
    ("flow_method", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, method="euler"),
     ValueError, r"^method must be"),
    ("flow_diffrax_out_of_steps", lambda: dynamics.scalar_flow(
        jnp.array([0.0, 1.0, 2.0, 1e4]), 1e3, 1e3, 1.0, -0.5, method="diffrax", max_steps=3),
     RuntimeError, r"max_steps=3 steps were not enough"),
    ("flow_diffrax_max_steps_0", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1,
                                                             method="diffrax", max_steps=0),
     ValueError, r"^max_steps must be"),
    ("flow_diffrax_rtol_nan", lambda: dynamics.scalar_flow([0.0, 1.0], 1.0, 0.0, 0.1, 0.1, method="diffrax",
                                                          rtol=NAN), ValueError, r"^rtol must lie"),
    ("flow_diffrax_ts_nan", lambda: dynamics.scalar_flow([0.0, NAN], 1.0, 0.0, 0.1, 0.1, method="diffrax"),
     ValueError, r"^ts must lie"),
    ("simulate_method", lambda: dynamics.simulate_scalar(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2,
                                                         method="euler"), ValueError, r"^method must be"),
    ("simulate_epochs_0", lambda: dynamics.simulate_scalar(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=0),
     ValueError, r"^epochs must be"),
    # --- dynamics: matrix (class 5: zero sizes) -----------------------------------------------------
    ("matrix_gd_d_0", lambda: dynamics.matrix_gd(jnp.zeros((0,)), jnp.zeros((1, 0)), jnp.zeros((0, 1)),
                                                 alpha=0.1, n=1, epochs=2), ValueError,
     r"^eigvals must have D = eigvals.shape\[-1\] >= 1; got 0"),
    ("matrix_flow_d_0", lambda: dynamics.matrix_flow([0.0, 1.0], jnp.zeros((0,)), jnp.zeros((1, 0)),
                                                     jnp.zeros((0, 1)), tau=1.0, n=1, dt=0.1), ValueError,
     r"^eigvals must have D"),
    ("matrix_gd_h_0", lambda: dynamics.matrix_gd(LAM2, jnp.zeros((0, 2)), jnp.zeros((2, 0)), alpha=0.1,
                                                 n=1, epochs=2), ValueError, r"hidden size H"),
    ("matrix_gd_scalar_eigvals", lambda: dynamics.matrix_gd(1.0, W1, W2, alpha=0.1, n=1, epochs=1),
     ValueError, r"^eigvals must have shape"),
    ("matrix_gd_shapes", lambda: dynamics.matrix_gd(jnp.ones(3), W1, W2, alpha=0.1, n=1, epochs=1),
     ValueError, r"^shapes must be w1"),
    ("matrix_gd_w1_1d", lambda: dynamics.matrix_gd(LAM2, jnp.ones(2), W2, alpha=0.1, n=1, epochs=1),
     ValueError, r"^w1 must be"),
    ("matrix_gd_w1_nan", lambda: dynamics.matrix_gd(LAM2, W1.at[0, 0].set(NAN), W2, alpha=0.1, n=1,
                                                    epochs=1), ValueError, r"^w1 must lie"),
    ("matrix_gd_eigvals_neg", lambda: dynamics.matrix_gd(jnp.array([1.0, -1.0]), W1, W2, alpha=0.1, n=1,
                                                         epochs=1), ValueError, r"^eigvals must lie"),
    ("matrix_gd_eigvals_inf", lambda: dynamics.matrix_gd(jnp.array([INF, 1.0]), W1, W2, alpha=0.1, n=1,
                                                         epochs=1), ValueError, r"^eigvals must lie"),
    ("matrix_gd_alpha_nan", lambda: dynamics.matrix_gd(LAM2, W1, W2, alpha=NAN, n=1, epochs=1), ValueError,
     r"^alpha must lie"),
    ("matrix_gd_n_inf", lambda: dynamics.matrix_gd(LAM2, W1, W2, alpha=0.1, n=INF, epochs=1), ValueError,
     r"^n must lie"),
    ("matrix_gd_precision", lambda: dynamics.matrix_gd(LAM2, W1, W2, alpha=0.1, n=1, epochs=1,
                                                       precision="best"), ValueError, r"^precision must be"),
    ("matrix_gd_batch", lambda: dynamics.matrix_gd(LAM2, W1, W2, alpha=jnp.ones(3), n=jnp.ones(2), epochs=1),
     ValueError, r"alpha\(3,\).*n\(2,\)"),
    ("matrix_flow_dt_0", lambda: dynamics.matrix_flow([0.0, 1.0], LAM2, W1, W2, tau=1.0, n=1, dt=0.0),
     ValueError, r"^dt must be"),
    ("matrix_flow_tau_inf", lambda: dynamics.matrix_flow([0.0, 1.0], LAM2, W1, W2, tau=INF, n=1, dt=0.1),
     ValueError, r"^tau must lie"),
    ("matrix_gd_data_empty", lambda: ref.matrix_gd_data(np.ones((0, 2)), W1, W2, alpha=0.1, epochs=1),
     ValueError, r"^x must be an \(N, D\) data matrix, N, D >= 1"),
    ("matrix_gd_data_nan", lambda: ref.matrix_gd_data(np.array([[NAN, 1.0]]), W1, W2, alpha=0.1,
                                                           epochs=1), ValueError, r"^x must lie"),
    ("matrix_gd_sigma_d_0", lambda: ref.matrix_gd_sigma(np.ones((0, 0)), jnp.zeros((1, 0)),
                                                             jnp.zeros((0, 1)), n=1, alpha=0.1, epochs=1),
     ValueError, r"the data's dimension D must have size >= 1"),
    ("matrix_gd_sigma_inf", lambda: ref.matrix_gd_sigma(np.full((2, 2), INF), W1, W2, n=1, alpha=0.1,
                                                             epochs=1), ValueError, r"^sigma must lie"),
    ("orthogonal_init_d_0", lambda: dynamics.orthogonal_init(0, 2, 0.1, 0.1), ValueError, r"^d must be"),
    ("orthogonal_init_h_float", lambda: dynamics.orthogonal_init(2, 1.5, 0.1, 0.1), ValueError,
     r"^h must be"),
    ("orthogonal_init_d1_nan", lambda: dynamics.orthogonal_init(2, 2, NAN, 0.1), ValueError, r"^d1 must lie"),
    ("random_init_scale_inf", lambda: dynamics.random_init(2, 2, init_scale=INF, key=jr.key(0)), ValueError,
     r"^init_scale must lie"),
    ("random_init_no_key", lambda: dynamics.random_init(2, 2, init_scale=0.1, key=None), ValueError, r"key"),
    # --- _linear and _checks --------------------------------------------------------------------------
    ("stability_lam_nan", lambda: _linear.check_gd_stability(NAN, alpha=0.1), ValueError, r"^lam must lie"),
    ("stability_alpha_0", lambda: _linear.check_gd_stability(1.0, alpha=0.0), ValueError, r"^alpha must lie"),
    ("stability_alpha_inf", lambda: _linear.check_gd_stability(1.0, alpha=INF), ValueError,
     r"^alpha must lie"),
    ("linear_form", lambda: _linear.check_form("cube", 3, 2), ValueError, r"form"),
    ("checks_representable_huge", lambda: _checks.check_representable("x", HUGE, "float32"), ValueError,
     r"^x = 1e\+300 is outside the range of float32"),
    ("checks_representable_tiny", lambda: _checks.check_representable("x", [1.0, 1e-45], "float32"),
     ValueError, r"^x = 1e-45"),
    ("checks_representable_power", lambda: _checks.check_representable("w", 1e20, "float32", power=2),
     ValueError, r"^w \(raised to the power 2 here\) = 1e\+20"),
    ("checks_output_nan", lambda: _checks.check_output("f", jnp.array([1.0, NAN])), ValueError,
     r"^f is not finite for these inputs in float32 \(1 of 2 values NaN or inf\)"),
    ("checks_output_inf", lambda: _checks.check_output("g", jnp.array([INF])), ValueError,
     r"^g is not finite"),
    ("checks_nonempty", lambda: _checks.check_nonempty("x", 0), ValueError, r"^x must have size >= 1"),
    ("checks_int_nan", lambda: _checks.check_int("epochs", NAN, 0), ValueError,
     r"^epochs must be an integer"),
    ("checks_range_string", lambda: _checks.check_range("lam", "one", 0.0), ValueError,
     r"^lam must be numeric"),
    ("checks_range_neg_inf", lambda: _checks.check_range("gamma", -INF, 0.0), ValueError,
     r"^gamma must lie"),
    # --- tune -----------------------------------------------------------------------------------------
    ("tune_init_0", lambda: tune.tune(lambda p: p["eps"], {"eps": 0.0}), ValueError, r"^initial eps must be"),
    ("tune_init_nan", lambda: tune.tune(lambda p: p["eps"], {"eps": NAN}), ValueError, r"^initial eps must"),
    ("tune_init_inf", lambda: tune.tune(lambda p: p["eps"], {"eps": INF}), ValueError, r"^initial eps must"),
    ("tune_init_outside_bounds", lambda: tune.tune(lambda p: p["eps"], {"eps": 1e20}), ValueError,
     r"^initial eps must lie in \[9.357\d*e-14, 10686474581524.\d+\]; got 1"),
    ("tune_init_empty", lambda: tune.tune(lambda p: 0.0, {}), ValueError, r"^init must be a non-empty dict"),
    ("tune_max_steps_0", lambda: tune.tune(lambda p: p["eps"], {"eps": 1.0}, max_steps=0), ValueError,
     r"^max_steps must lie"),
    ("tune_gtol_nan", lambda: tune.tune(lambda p: p["eps"], {"eps": 1.0}, gtol=NAN), ValueError,
     r"^gtol must lie"),
    ("tune_log_bounds", lambda: tune.tune(lambda p: p["eps"], {"eps": 1.0}, log_bounds=(1.0, -1.0)),
     ValueError, r"^log_bounds must be"),
    ("grid_empty", lambda: tune.grid_search(lambda p: p["eps"], {"eps": []}), ValueError, r"grid\['eps'\]"),
    ("problem_eigvals_neg", lambda: tune.problem_from_spectrum([-1.0, 1.0], [1.0, 1.0], 2, 2), ValueError,
     r"^eigvals must lie"),
    ("problem_projected_inf", lambda: tune.problem_from_spectrum([1.0, 1.0], [INF, 1.0], 2, 2), ValueError,
     r"^projected must lie"),
    ("problem_n_heldout_0", lambda: tune.problem_from_spectrum([1.0], [1.0], 2, 0), ValueError,
     r"^n_heldout must be >= 1"),
    ("problem_shapes", lambda: tune.problem_from_spectrum([1.0, 2.0], [1.0], 2, 2), ValueError,
     r"eigvals and projected"),
    ("heldout_problem_nan", lambda: tune.heldout_problem(np.array([[NAN, 1.0]]), np.ones((2, 2))),
     ValueError, r"x and x_heldout must be finite"),
    ("heldout_problem_empty", lambda: tune.heldout_problem(np.ones((3, 2)), np.ones((0, 2))), ValueError,
     r"^x_heldout is empty"),
    ("objective_alpha_0", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=0.0), ValueError,
     r"^alpha must lie"),
    ("objective_alpha_inf", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=INF), ValueError,
     r"^alpha must lie"),
    ("objective_epochs_inf", lambda: tune.heldout_objective(_problem(), epochs=INF, alpha=0.1), ValueError,
     r"^epochs must lie"),
    ("objective_eps_neg", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=0.1, eps=-1.0),
     ValueError, r"^eps must lie"),
    ("objective_w0_1", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=0.1, w0=1.0), ValueError,
     r"^w0 must lie"),
    ("objective_eval_sigma2_inf", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=0.1,
                                                                eval_sigma2=INF), ValueError,
     r"^eval_sigma2 must lie"),
    ("objective_route", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=0.1, route="adjoint"),
     ValueError, r"^route must be"),
    ("objective_unknown_hyper", lambda: tune.heldout_objective(_problem(), epochs=10.0, alpha=0.1)(
        {"beta": 1.0}), ValueError, r"unknown hyperparameter"),
    ("dynamics_route_epochs_0", lambda: DynamicsRoute(epochs=0), ValueError, r"^epochs must be an integer"),
    ("dynamics_route_init", lambda: DynamicsRoute(epochs=2, init="zeros"), ValueError, r"^init must be"),
    ("time_to_loss_target_0", lambda: tune.time_to_loss(_problem(), 0.0, alpha=0.1), ValueError,
     r"^target must lie"),
    ("time_to_loss_alpha_nan", lambda: tune.time_to_loss(_problem(), 0.1, alpha=NAN), ValueError,
     r"^alpha must lie"),
    ("spectrum_mapping_d_0", lambda: theory.spectrum_mapping(1.0, np.ones(0), w0=0.1, tau=1.0, n=1),
     ValueError, r"^eigvals must have a trailing direction axis \(\.\.\., D\), D >= 1"),
    ("predicted_loss_projected_nan", lambda: theory.predicted_loss(1.0, [1.0], [NAN], 1, w0=0.1, tau=1.0,
                                                                   n=1),
     ValueError, r"^projected must lie"),
    ("expected_loss_nan", lambda: theory.expected_loss(np.full((1, 2), NAN), np.ones((2, 1)), np.eye(2), n=1),
     ValueError, r"^w1_mat must lie"),
    ("expected_loss_empty", lambda: theory.expected_loss(np.ones((0, 2)), np.ones((2, 0)), np.eye(2), n=1),
     ValueError, r"^w1_mat must have non-empty"),
    ("expected_loss_sigma_inf", lambda: theory.expected_loss(np.ones((1, 2)), np.ones((2, 1)),
                                                            np.full((2, 2), INF), n=1), ValueError,
     r"^sigma must lie"),
]


@pytest.mark.parametrize("call,exc,match", [pytest.param(c, e, m, id=i) for i, c, e, m in REFUSED])
def test_refused_with_a_named_parameter(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------------
# Extreme but valid inputs that must come back finite and right: (id, call, check)

def _close(want, rtol=1e-5, atol=0.0):
    def check(out):
        out = np.asarray(out, np.float64)
        assert np.all(np.isfinite(out)), out
        np.testing.assert_allclose(out, want, rtol=rtol, atol=atol)
    return check


def _with_x64(f):
    def call():
        with jax.enable_x64(True):
            return np.asarray(f())
    return call


_T = np.array([0.0, 1e-30, 3e-30, 1e9])


def _lam_scaled_reference():
    # lam, eps scale out with time: w(t; 1e30 lam, 1e30 eps) = w(1e30 t; lam, eps), computed in float64
    with jax.enable_x64(True):
        return np.asarray(theory.dae_trajectory(np.minimum(_T * 1e30, 1e6), 1.0, 1.0, 0.1, 0.2))


def _grad_near_saddle(arg):
    lam, n = jnp.float32(0.1), jnp.float32(7.0)
    g = lam / n  # lam - n g is within rounding of 0 (9.3e-10 in XLA's float32)
    f = lambda lam, g: theory.learning_time(0.5, lam, 0.1, g, w0=1e-30, n=n)
    return jax.grad(f, argnums=arg)(lam, g)


RETURNED = [
    ("dae_lam_1e30_float32", lambda: theory.dae_trajectory(_T, 1e30, 1e30, 0.1, 0.2),
     _close(_lam_scaled_reference(), rtol=1e-5)),
    ("dae_lam_1e38_long_time", lambda: theory.dae_trajectory(3e38, 3e38, 0.0, 0.1, 0.2), _close(1.0)),
    ("dae_lt_lam_1e30", lambda: theory.dae_learning_time(0.9, 1e30, 1e30, 0.1, -0.8),
     _close(float(theory.dae_learning_time(0.9, 1.0, 1.0, 0.1, -0.8)) * 1e-30, rtol=1e-5)),
    ("dae_weights_lam_1e30", lambda: theory.dae_weights(1e-28, 1e30, 0.0, 0.5, 1.5)[0] *
     theory.dae_weights(1e-28, 1e30, 0.0, 0.5, 1.5)[1], _close(1.0, rtol=1e-5)),
    ("small_init_w0_0_long_time", lambda: theory.small_init_trajectory(np.array([0.0, 1e3, 1e30]), 1.0,
                                                                       w0=0.0),
     _close([0.0, 0.0, 0.0])),
    ("small_init_long_time", lambda: theory.small_init_trajectory(1e38, 1.0, 1.0, w0=1.0), _close(0.5)),
    ("small_init_lam_1e30", lambda: theory.small_init_trajectory(1.0, 1e30, 1e30, w0=1e-3), _close(0.5)),
    ("fixed_point_sum_overflows", lambda: theory.fixed_point(3e38, 3e38), _close(0.5)),
    ("equivalent_gamma_product_overflows", lambda: theory.equivalent_gamma(3e38, 3e38), _close(1.5e38)),
    ("w1w2_1e-30_float64", _with_x64(lambda: theory.dae_trajectory(np.array([0.0, 200.0]), 1.0, 0.0,
                                                                    1e-30, 1e-30)),
     _close([1e-60, 1.0], rtol=1e-6)),
    ("lam_1e300_float64", _with_x64(lambda: theory.fixed_point(1e300, 1e300)), _close(0.5)),
    ("learning_time_grad_lam_near_n_gamma", lambda: _grad_near_saddle(0), _close(-2.818465e19, rtol=1e-4)),
    ("learning_time_grad_gamma_near_n_gamma", lambda: _grad_near_saddle(1), _close(1.972926e20, rtol=1e-4)),
    ("theory_float16_computes_in_float32", lambda: theory.dae_trajectory(
        np.float16(1.0), np.float16(1.0), np.float16(0.0), np.float16(0.1), np.float16(0.1)),
     lambda out: (_close(float(theory.dae_trajectory(1.0, 1.0, 0.0, 0.1, 0.1)), rtol=1e-3)(out),
                  out.dtype == jnp.float32 or pytest.fail(str(out.dtype)))),
    ("gd_list_inputs", lambda: dynamics.scalar_gd([1.0, 2.0], 0.0, 0.1, 0.1, alpha=0.1, epochs=2).w[:, -1],
     _close(np.asarray(dynamics.scalar_gd(jnp.array([1.0, 2.0]), 0.0, 0.1, 0.1, alpha=0.1,
                                          epochs=2).w[:, -1]))),
    ("gd_float16_inputs", lambda: dynamics.scalar_gd(np.float16(1.0), np.float16(1.0), np.float16(0.5),
                                                     np.float16(0.5), alpha=np.float16(0.5),
                                                     epochs=200).w[-1],
     lambda out: (_close(0.5, rtol=1e-5)(out), out.dtype == jnp.float32 or pytest.fail(str(out.dtype)))),
    ("flow_list_inputs", lambda: dynamics.scalar_flow([0.0, 50.0], [1.0, 3.0], 1.0, 0.1, 0.1,
                                                      dt=0.1).w[:, -1],
     _close([0.5, 0.75], rtol=1e-4)),
    ("flow_ts_1e9_with_dt", lambda: dynamics.scalar_flow([0.0, 1e9], 1e-8, 0.0, 0.1, 0.1, dt=1e5).w[-1],
     _close(float(theory.dae_trajectory(1e9, 1e-8, 0.0, 0.1, 0.1)), rtol=1e-4)),
    ("matrix_gd_list_eigvals", lambda: dynamics.matrix_gd([2.0, 1.0], [[0.1, 0.0]], [[0.1], [0.0]], eps=1.0,
                                                          alpha=0.1, n=1, epochs=400).mapping[-1],
     _close([2 / 3, 0.0], atol=1e-5)),
    ("spectrum_list_input", lambda: spectrum.compute_spectrum(jnp.asarray([[3.0, 0.0], [0.0, 1.0]])).eigvals,
     _close([9.0, 1.0])),
    ("spectrum_float16_input", lambda: spectrum.compute_spectrum(np.array([[3.0, 0.0], [0.0, 1.0]],
                                                                          np.float16)).eigvals,
     _close([9.0, 1.0])),
    ("noise_gaussian_array", lambda: noise.eps_of(noise.gaussian(np.array([0.0, 0.5])), 4),
     _close([0.0, 2.0])),
    ("checks_float_dtype_list", lambda: np.zeros((), _checks.float_dtype([1, 2], [0.5])), _close(0.0)),
]


# lam - n gamma is 9.3e-10 in the optimised program's float32 (a fused multiply-add keeps n gamma
# unrounded) and exactly 0 without the fusion: these two cases are about the optimised program
_OPTIMIZED = {"learning_time_grad_lam_near_n_gamma", "learning_time_grad_gamma_near_n_gamma"}


@pytest.mark.parametrize("call,check", [
    pytest.param(c, k, id=i, marks=[pytest.mark.optimized] if i in _OPTIMIZED else [])
    for i, c, k in RETURNED])
def test_extreme_but_valid_inputs_come_back_finite_and_right(call, check):
    out = call()
    check(out)


def test_half_precision_inputs_are_computed_in_float32():
    assert _checks.float_dtype(np.float16(1.0)) == jnp.float32
    assert _checks.float_dtype(jnp.bfloat16(1.0), 2.0) == jnp.float32
    assert _checks.float_dtype(dtype="float16") == jnp.float16  # an explicit dtype is the user's choice


# ------------------------------------------------------------------------------------------------
# Legitimate limits reported as warnings, never silently: (id, call, warning pattern)

WARNED = [
    ("gd_diverges_from_start", lambda: dynamics.scalar_gd(1.0, 1e12, 1.0, 1.0, alpha=1e-3, epochs=5),
     r"diverges from its start.*eps=1e\+12.*alpha \* h_start = 3e\+09"),
    ("gd_diverged_unchecked", lambda: dynamics.scalar_gd(1.0, 1e12, 1.0, 1.0, alpha=1e-3, epochs=5,
                                                         check_stability=False),
     r"^scalar_gd: 1 of 1 value\(s\) at the last save are NaN or inf: the run diverged"),
    ("flow_diverged", lambda: dynamics.scalar_flow([0.0, 100.0], 100.0, 0.0, 1.5, 0.3, dt=1.0),
     r"^scalar_flow: .* NaN or inf"),
    ("matrix_flow_diverged", lambda: dynamics.matrix_flow([0.0, 100.0], jnp.array([100.0, 1.0]), W1 * 10,
                                                          W2 * 10, tau=1.0, n=1, dt=1.0),
     r"^matrix_flow: .* NaN or inf"),
    ("matrix_gd_fixed_point", lambda: dynamics.matrix_gd(jnp.array([500.0, 1.0]), W1, W2, alpha=0.1, n=1,
                                                         epochs=3), r"cannot settle.*lam=500"),
]


@pytest.mark.parametrize("call,match", [pytest.param(c, m, id=i) for i, c, m in WARNED])
def test_legitimate_limits_warn(call, match):
    with pytest.warns(dynamics.UnstableStepWarning, match=match):
        call()


def test_stable_start_does_not_warn():
    """The start check stays quiet for ordinary runs (small start, stable rate)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dynamics.scalar_gd(1.0, 5.0, 1e-3, 1e-3, alpha=0.3, epochs=10)


def test_diffrax_out_of_steps_under_jit_is_nan_not_an_exception():
    f = jax.jit(lambda lam: dynamics.scalar_flow(jnp.array([0.0, 1.0, 1e4]), lam, 1e3, 1.0, -0.5,
                                                 method="diffrax", max_steps=3).w)
    assert np.all(np.isnan(np.asarray(f(1e3))[1:]))


def test_tune_from_an_absurd_eps_reports_a_flat_objective():
    """Started where the objective is saturated, the gradient is ~0: that is not convergence."""
    rng = np.random.default_rng(0)
    p = tune.heldout_problem(rng.normal(size=(50, 4)), rng.normal(size=(20, 4)), keep_data=False)
    f = tune.heldout_objective(p, epochs=1e3, alpha=0.01, eval_sigma2=0.1)
    r = tune.tune(f, {"eps": 1e12})
    assert r.status == "flat" and not r.success and r.n_steps == 0
    assert "flat (saturated)" in r.message and "eps0" in r.message
    good = tune.tune(f, {"eps": 5.0})
    assert good.status == "converged" and good.success  # a real optimum is still "converged"
