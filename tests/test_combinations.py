"""One matrix of combinations against one cheap, independent reference.

Depth x schedule kind x engine: every per-direction engine (scalar GD on each backend, the RK4 flow)
under every kind of schedule (constant, piecewise constant, linear, exponential, user function) for
eps, gamma and alpha (tau for the flow) at depths 2, 3 and 4, against a NumPy reference that keeps
every one of the L factors as its own array and evaluates the rates with its own NumPy formulas
(never daedyn's), in float64. Rows are added here rather than in one test file per combination.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import dynamics, schedules

EPOCHS, EVERY = 24, 6
LAM = np.array([0.8, 1.5, 3.0])  # learned (lam > n gamma) and well inside GD's stable range
W1, W2 = 0.35, 0.45  # the first L - 1 factors start at W1, the last at W2


def _kinds():
    """name -> (builder of the daedyn schedule, NumPy evaluation), for a rate around ``base``."""
    return {
        "constant": (lambda b: b, lambda b, t: b + 0 * t),
        "piecewise": (lambda b: schedules.piecewise_constant([5.0, 13.5], [b, 2.5 * b, 0.5 * b]),
                      lambda b, t: np.where(t < 5.0, b, np.where(t < 13.5, 2.5 * b, 0.5 * b))),
        "linear": (lambda b: schedules.linear(b, 3 * b, 15.0),
                   lambda b, t: b + 2 * b * np.clip(t / 15.0, 0, 1)),
        "exponential": (lambda b: schedules.exponential(b, b / 4, 20.0),
                        lambda b, t: b * 0.25 ** np.clip(t / 20.0, 0, 1)),
        "function": (lambda b: schedules.function(lambda t, c: c * (1 + 0.5 * jnp.sin(t / 3.0)), b),
                     lambda b, t: b * (1 + 0.5 * np.sin(t / 3.0))),
    }


RATES = {"eps": 0.6, "gamma": 0.02, "alpha": 0.05}


def _numpy_gd(depth, eps, gamma, alpha, n=1.0):
    """GD on all L factors, each its own array; rates evaluated at t = epoch (step j uses rate(j))."""
    a = [np.full(LAM.shape, W1) for _ in range(depth - 1)] + [np.full(LAM.shape, W2)]
    us = [np.prod(a, axis=0)]
    for j in range(EPOCHS):
        e, g, al = eps(float(j)), gamma(float(j)), alpha(float(j))
        u = np.prod(a, axis=0)
        others = [np.prod([a[i] for i in range(depth) if i != l], axis=0) for l in range(depth)]
        a = [a[l] + (al / n) * ((LAM - (LAM + e) * u) * others[l] - n * g * a[l]) for l in range(depth)]
        us.append(np.prod(a, axis=0))
    return np.array(us)[::EVERY].T, a


# every kind for eps; gamma and alpha through the two code paths (table, per-step evaluation)
GD_CASES = ([("eps", k) for k in _kinds()]
            + [(r, k) for r in ("gamma", "alpha") for k in ("piecewise", "linear")])


def _latin(cases, depths, ids=None):
    """(case..., depth) rows: the default suite runs every case once, at depths taken in turn (every
    depth many times), the slow suite the full product. Each row compiles its own run (~1-3 s on 2
    cores): the full product doubles the default suite's share of this file for no new code path."""
    rows = []
    for i, case in enumerate(cases):
        case = case if isinstance(case, tuple) else (case,)
        for j, depth in enumerate(depths):
            keep = j == i % len(depths)
            rows.append(pytest.param(*case, depth, marks=() if keep else pytest.mark.slow,
                                     id="-".join(map(str, (*case, depth)))))
    return rows


@pytest.mark.parametrize("rate, kind, depth", _latin(GD_CASES, [2, 3, 4]))
def test_scalar_gd_any_depth_any_schedule(depth, rate, kind, x64):
    make, ref = _kinds()[kind]
    args = {r: (make(b) if r == rate else b) for r, b in RATES.items()}
    refs = {r: ((lambda t, b=b, f=ref: f(b, t)) if r == rate else (lambda t, b=b: b))
            for r, b in RATES.items()}
    want, factors = _numpy_gd(depth, refs["eps"], refs["gamma"], refs["alpha"])
    backends = ["scan"] + (["jnp"] if kind in ("constant", "piecewise") else [])  # interpret: test_kernels
    for backend in backends:
        tr = dynamics.scalar_gd(LAM, args["eps"], W1, W2, alpha=args["alpha"], gamma=args["gamma"],
                                epochs=EPOCHS, save_every=EVERY, depth=depth, backend=backend,
                                observables="all")
        # float64, the same recursion written independently: rounding only (24 steps), 1e-12
        np.testing.assert_allclose(tr.w, want, rtol=1e-12, atol=1e-14, err_msg=backend)
        np.testing.assert_allclose(tr.w1[:, -1], factors[0], rtol=1e-12, err_msg=backend)
        np.testing.assert_allclose(tr.w2[:, -1], factors[-1], rtol=1e-12, err_msg=backend)
        np.testing.assert_allclose(tr.weight_norm[:, -1], sum(f**2 for f in factors), rtol=1e-12)
        # the loss at the save times uses the rates in force then (eps(t), gamma(t), alpha(t) / n)
        t = np.asarray(tr.t)
        e, g, al = (np.broadcast_to(refs[r](t), t.shape) for r in ("eps", "gamma", "alpha"))
        loss = (LAM[:, None] * (1 - want) ** 2 + e * want**2 + g * np.asarray(tr.weight_norm)) * al / 2
        np.testing.assert_allclose(tr.loss, loss, rtol=1e-12, err_msg=backend)


FLOW_TS = np.array([0.0, 4.0, 5.0, 9.0, 13.5, 20.0])  # the piecewise jumps (5, 13.5) are save times


@pytest.mark.parametrize("kind, depth", _latin(["piecewise", "linear", "function"], [2, 3, 4]))
def test_scalar_flow_any_depth_any_schedule(depth, kind, x64):
    make, ref = _kinds()[kind]
    tau = 20.0
    eps_s, eps_np = make(0.6), (lambda t: ref(0.6, t))
    tau_s, tau_np = make(tau), (lambda t: ref(tau, t))
    g = 0.02

    def rhs(t, y):  # all L factors, a separate state each
        a = y.reshape(depth, -1)
        u = np.prod(a, axis=0)
        e, ta = eps_np(t), tau_np(t)
        d = [((LAM - (LAM + e) * u) * np.prod([a[i] for i in range(depth) if i != l], axis=0) - g * a[l]) / ta
             for l in range(depth)]
        return np.concatenate(d)

    y = np.concatenate([np.full(LAM.shape, W1)] * (depth - 1) + [np.full(LAM.shape, W2)])
    want = [np.prod(y.reshape(depth, -1), axis=0)]
    for t0, t1 in zip(FLOW_TS[:-1], FLOW_TS[1:]):  # piece by piece: the jumps are exact
        if t1 > t0:
            y = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
        want.append(np.prod(y.reshape(depth, -1), axis=0))
    tr = dynamics.scalar_flow(jnp.asarray(FLOW_TS), LAM, eps_s, W1, W2, tau=tau_s, gamma=g, dt=0.01,
                              depth=depth)
    # RK4 at dt = 0.01 with the jumps on step ends: error ~ dt^4 x rates; measured < 1e-10, bound 1e-8
    np.testing.assert_allclose(tr.w, np.array(want).T, rtol=0, atol=1e-8)


# ------------------------------------------------------------------------------------------------
# The full-matrix engine: depth x schedule kind x (GD, flow), against NumPy on the L factor matrices
#
# The reference keeps the L factors of each run as NumPy arrays in the eigenbasis and takes the
# expected-loss gradient written out here: with W = W_L ... W_1, G = (W (Lam + C) - Lam) / n,
# dL/dW_l = Q_l^T G S_l^T + gamma W_l (Q_l = W_L ... W_{l+1}, S_l = W_{l-1} ... W_1); GD is
# W_l <- W_l - alpha dL/dW_l (step j with the rates at t = j), the flow tau dW_l/dt = -n dL/dW_l
# (scipy's DOP853 piece by piece between the save times, so the jumps at 5 and 13.5 are exact). The
# corruption term C(t) changes form with the kind so that every representation runs at every depth:
# a (D, D) matrix (constant), a per-direction vector (piecewise), a scalar noise level (linear); the
# rates gamma and alpha (tau) take the same kind. Two random starts (a batch of 2), coupled
# directions, widths below, at and mixed around D.

MD, MN = 4, 2.0
MLAM = np.array([3.0, 1.6, 0.9, 0.4])
WIDTHS = {2: (3,), 3: (3, 2), 4: (3, 4, 2)}
MATRIX_KINDS = ["constant", "piecewise", "linear"]
# The default suite runs a Latin square of the 3 x 3 (depth, kind) cases per engine (every depth and
# every kind once, the jumps of the piecewise kind in both engines); the slow suite runs all 18. Each
# case compiles its own run (~1-2.5 s on the 2-core CPU): the full product would make the default
# suite slower than the per-combination tests it replaces.
DEFAULT_CASES = {("gd", 2, "piecewise"), ("gd", 3, "linear"), ("gd", 4, "constant"),
                 ("flow", 2, "linear"), ("flow", 3, "piecewise"), ("flow", 4, "constant")}


def _matrix_cases(engine):
    return [pytest.param(depth, kind, id=f"{kind}-{depth}",
                         marks=() if (engine, depth, kind) in DEFAULT_CASES else pytest.mark.slow)
            for kind in MATRIX_KINDS for depth in (2, 3, 4)]


def _matrix_start(depth):
    rng = np.random.default_rng(depth)
    sizes = (MD,) + WIDTHS[depth] + (MD,)
    return [0.5 * rng.standard_normal((2, sizes[l + 1], sizes[l])) for l in range(depth)]


def _corruption(kind):
    """(daedyn's eps, eps_dims, NumPy C(t) as a (D, D) matrix)."""
    if kind == "constant":
        a = np.random.default_rng(7).standard_normal((MD, MD))
        c = 0.3 * np.eye(MD) + 0.2 * a @ a.T / MD
        return c, 2, lambda t: c
    if kind == "piecewise":
        v = np.array([[0.6, 0.2, 1.0, 0.4], [1.5, 0.5, 2.5, 1.0], [0.3, 0.1, 0.5, 0.2]])
        return (schedules.piecewise_constant([5.0, 13.5], v), 1,
                lambda t: np.diag(v[0 if t < 5.0 else 1 if t < 13.5 else 2]))
    make, ref = _kinds()[kind]
    return make(0.6), 0, lambda t: ref(0.6, t) * np.eye(MD)


def _form(depth, kind):
    """Every gradient form somewhere in the matrix ("gram_t": depth 2 only)."""
    return {"constant": "auto", "piecewise": "square", "linear": "gram_t" if depth == 2 else "gram"}[kind]


def _np_product(ws):
    w = ws[0]
    for v in ws[1:]:
        w = v @ w
    return w


def _np_grads(ws, c, gamma):
    lam = np.diag(MLAM)
    g = (_np_product(ws) @ (lam + c) - lam) / MN
    out = []
    for l, w in enumerate(ws):
        s = _np_product(ws[:l]) if l else np.eye(MD)  # W_{l-1} ... W_1
        q = _np_product(ws[l + 1:]) if l < len(ws) - 1 else np.eye(MD)  # W_L ... W_{l+1}
        out.append(q.T @ g @ s.T + gamma * w)
    return out


def _np_observe(ws, c, gamma):
    lam, w = np.diag(MLAM), _np_product(ws)
    norm = sum(np.sum(f * f) for f in ws)
    quad = np.trace(w @ (lam + c) @ w.T)
    loss = (np.trace(lam) - 2 * np.trace(w @ lam) + quad) / (2 * MN) + gamma / 2 * norm
    return np.diag(w), np.linalg.svd(w, compute_uv=False)[:min(ws[-1].shape[1], MD)], norm, loss


def _stack_runs(runs):
    """[(saves, final factors)] per batch element -> mapping, svals, norm, loss (2, T, ...), factors."""
    fields = [np.array([[s[i] for s in saves] for saves, _ in runs]) for i in range(4)]
    return fields, [np.array([ws[l] for _, ws in runs]) for l in range(len(runs[0][1]))]


def _np_matrix_gd(depth, c_of, gamma_of, alpha_of):
    runs = []
    for b in range(2):
        ws, saves = [w[b] for w in _matrix_start(depth)], []
        for j in range(EPOCHS + 1):
            if j % EVERY == 0:
                saves.append(_np_observe(ws, c_of(float(j)), gamma_of(float(j))))
            if j < EPOCHS:
                grads = _np_grads(ws, c_of(float(j)), gamma_of(float(j)))
                ws = [w - alpha_of(float(j)) * g for w, g in zip(ws, grads)]
        runs.append((saves, ws))
    return _stack_runs(runs)


def _np_matrix_flow(depth, c_of, gamma_of, tau_of):
    shapes = [w.shape[1:] for w in _matrix_start(depth)]
    cuts = np.cumsum([np.prod(s) for s in shapes])[:-1]
    unpack = lambda y: [p.reshape(s) for p, s in zip(np.split(y, cuts), shapes)]

    def rhs(t, y):
        grads = _np_grads(unpack(y), c_of(t), gamma_of(t))
        return np.concatenate([(-MN / tau_of(t) * g).ravel() for g in grads])

    runs = []
    for b in range(2):
        y = np.concatenate([w[b].ravel() for w in _matrix_start(depth)])
        saves = [_np_observe(unpack(y), c_of(0.0), gamma_of(0.0))]
        for t0, t1 in zip(FLOW_TS[:-1], FLOW_TS[1:]):  # piece by piece: the jumps are exact
            if t1 > t0:
                y = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
            saves.append(_np_observe(unpack(y), c_of(t1), gamma_of(t1)))
        runs.append((saves, unpack(y)))
    return _stack_runs(runs)


def _compare(tr, want, rtol, atol, depth):
    fields, factors = want
    assert tr.depth == depth and len(tr.ws) == depth
    for name, w in zip(("mapping", "singular_values", "weight_norm", "loss"), fields):
        np.testing.assert_allclose(getattr(tr, name), w, rtol=rtol, atol=atol, err_msg=name)
    for l, w in enumerate(factors):
        np.testing.assert_allclose(tr.ws[l], w, rtol=rtol, atol=atol, err_msg=f"w{l + 1}")
    np.testing.assert_array_equal(tr.w1, tr.ws[0])
    np.testing.assert_array_equal(tr.w2, tr.ws[-1])


@pytest.mark.parametrize("depth, kind", _matrix_cases("gd"))
def test_matrix_gd_any_depth_any_schedule(depth, kind, x64):
    eps, eps_dims, c_of = _corruption(kind)
    make, ref = _kinds()[kind]
    want = _np_matrix_gd(depth, c_of, lambda t: ref(0.02, t), lambda t: ref(0.05, t))
    tr = dynamics.matrix_gd(MLAM, *_matrix_start(depth), eps=eps, eps_dims=eps_dims, gamma=make(0.02),
                            alpha=make(0.05), n=MN, epochs=EPOCHS, save_every=EVERY, form=_form(depth, kind))
    np.testing.assert_array_equal(tr.t, np.arange(0, EPOCHS + 1, EVERY))
    # float64, the same 24 steps written independently (other association of the products): rounding
    # only; measured <= 2e-15 relative, bound 1e-12
    _compare(tr, want, rtol=1e-12, atol=1e-14, depth=depth)


@pytest.mark.parametrize("depth, kind", _matrix_cases("flow"))
def test_matrix_flow_any_depth_any_schedule(depth, kind, x64):
    eps, eps_dims, c_of = _corruption(kind)
    make, ref = _kinds()[kind]
    want = _np_matrix_flow(depth, c_of, lambda t: ref(0.02, t), lambda t: ref(10.0, t))
    tr = dynamics.matrix_flow(jnp.asarray(FLOW_TS), MLAM, *_matrix_start(depth), eps=eps, eps_dims=eps_dims,
                              gamma=make(0.02), tau=make(10.0), n=MN, dt=0.005, form=_form(depth, kind))
    # RK4 at dt = 0.005 with the jumps on step ends against DOP853 at rtol 1e-12: global error
    # ~ dt^4 x the rates, largest at depth 3 (start |w| up to 1.7): measured 1.5e-10 on the mapping,
    # 1.8e-9 on a weight norm of 9.5 (2e-10 relative; 16x less at dt / 2: fourth order), 3e-11 at
    # depths 2 and 4; bound 1e-9 relative + 1e-9 absolute
    _compare(tr, want, rtol=1e-9, atol=1e-9, depth=depth)


@pytest.mark.parametrize("depth", [pytest.param(2, marks=pytest.mark.slow), 3,
                                   pytest.param(4, marks=pytest.mark.slow)])
@pytest.mark.parametrize("engine", ["gd", "flow"])
def test_matrix_engine_float32(depth, engine):
    """float32 (the default) against the float64 NumPy references, piecewise rates (depth 3 in the
    default suite: mixed widths, the largest errors)."""
    eps, eps_dims, c_of = _corruption("piecewise")
    make, ref = _kinds()["piecewise"]
    start = [w.astype(np.float32) for w in _matrix_start(depth)]
    kw = dict(eps=eps, eps_dims=eps_dims, gamma=make(0.02), n=MN)
    lam = MLAM.astype(np.float32)
    if engine == "gd":
        tr = dynamics.matrix_gd(lam, *start, alpha=make(0.05), epochs=EPOCHS, save_every=EVERY, **kw)
        want = _np_matrix_gd(depth, c_of, lambda t: ref(0.02, t), lambda t: ref(0.05, t))
    else:
        ts = jnp.asarray(FLOW_TS, jnp.float32)
        tr = dynamics.matrix_flow(ts, lam, *start, tau=make(10.0), dt=0.05, **kw)
        want = _np_matrix_flow(depth, c_of, lambda t: ref(0.02, t), lambda t: ref(10.0, t))
    assert tr.mapping.dtype == tr.ws[-1].dtype == jnp.float32
    # float32 rounding (eps 6e-8) over 24 GD steps / 400 RK4 steps of values up to ~12 (the loss),
    # the flow also RK4 at dt = 0.05: measured GD <= 1.7e-6 absolute / 2.3e-6 relative, flow
    # <= 1.9e-5 absolute / 7.7e-6 relative (depth 3); bound rtol 5e-5 + atol 5e-5
    _compare(tr, want, rtol=5e-5, atol=5e-5, depth=depth)


# ------------------------------------------------------------------------------------------------
# Corruptions as values: noise= in the per-direction engines, against the same kind of NumPy loop
# written on the per-direction quadratic form (k, m): dL/du = (m u - k) / n per direction.

import dataclasses  # noqa: E402

import jax  # noqa: E402

from daedyn import noise as noise_mod  # noqa: E402

N_SAMPLES = 4.0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Moments:
    """A corruption given directly by (k, m) per direction (k may be negative), possibly scheduled:
    the protocol a diffusion objective implements."""

    k: object
    m: object

    @property
    def scheduled(self):
        return any(schedules.is_schedule(x) for x in (self.k, self.m))

    def at(self, t):
        return _Moments(*(x(t) if schedules.is_schedule(x) else x for x in (self.k, self.m)))

    def direction_moments(self, lam, n):
        return jnp.broadcast_to(jnp.asarray(self.k), jnp.shape(lam)), jnp.broadcast_to(self.m, jnp.shape(lam))


def _numpy_gd_km(depth, k, m, w1, w2, alpha=0.05, gamma=0.02, n=N_SAMPLES, lam=None):
    """GD on all L factors with k(t), m(t) evaluated by the caller's NumPy functions; also the loss
    (c - 2 k u + m u^2 + n gamma |w|^2) alpha / (2 n) at the save times, c = lam."""
    a = [np.full(LAM.shape, w1) for _ in range(depth - 1)] + [np.full(LAM.shape, w2)]
    us, losses = [], []
    for j in range(EPOCHS + 1):
        u = np.prod(a, axis=0)
        kj, mj = k(float(j)), m(float(j))
        if j % EVERY == 0:
            us.append(u)
            c = LAM if lam is None else lam
            losses.append((c - 2 * kj * u + mj * u * u + n * gamma * sum(f**2 for f in a)) * alpha / (2 * n))
        if j == EPOCHS:
            break
        others = [np.prod([a[i] for i in range(depth) if i != l], axis=0) for l in range(depth)]
        a = [a[l] + (alpha / n) * ((kj - mj * u) * others[l] - n * gamma * a[l]) for l in range(depth)]
    return np.array(us).T, np.array(losses).T


K_SIGNED = np.array([0.8, -0.6, 2.0])  # a negative k: the fixed point k / m < 0 (learned anti-aligned)
M_POS = np.array([1.4, 1.1, 3.5])


def _noise_cases():
    # built as the classes directly: the public builders check values >= 0, and k may be negative
    pw = lambda b: schedules.PiecewiseConstant(jnp.array([5.0, 13.5]), jnp.stack([b, 1.5 * b, 0.5 * b]))  # noqa: E731
    pw_np = lambda b, t: np.where(t < 5.0, b, np.where(t < 13.5, 1.5 * b, 0.5 * b))  # noqa: E731
    lin = lambda b: schedules.function(lambda t, c: c * (1 + jnp.clip(t / 15.0, 0, 1)), b)  # noqa: E731
    lin_np = lambda b, t: b * (1 + np.clip(t / 15.0, 0, 1))  # noqa: E731
    s2 = 0.3
    return {
        "gaussian": (noise_mod.gaussian(s2), lambda t: LAM, lambda t: LAM + N_SAMPLES * s2),
        "signed": (_Moments(jnp.asarray(K_SIGNED), jnp.asarray(M_POS)), lambda t: K_SIGNED, lambda t: M_POS),
        # k and m both piecewise (a scheduled corruption that moves the cross moment too)
        "piecewise": (_Moments(pw(jnp.asarray(K_SIGNED)), pw(jnp.asarray(M_POS))),
                      lambda t: pw_np(K_SIGNED, t), lambda t: pw_np(M_POS, t)),
        "linear": (_Moments(lin(jnp.asarray(K_SIGNED)), lin(jnp.asarray(M_POS))),
                   lambda t: lin_np(K_SIGNED, t), lambda t: lin_np(M_POS, t)),
    }


@pytest.mark.parametrize("case, depth", _latin(["gaussian", "signed", "piecewise", "linear"], [2, 3]))
def test_scalar_gd_noise_values(depth, case, x64):
    value, k, m = _noise_cases()[case]
    w2 = -0.45 if case != "gaussian" else W2  # anti-aligned start: the negative k is learned
    want, loss = _numpy_gd_km(depth, k, m, W1, w2)
    backends = ["scan"] + (["jnp"] if case != "linear" else [])
    for backend in backends:
        tr = dynamics.scalar_gd(LAM, w1=W1, w2=w2, noise=value, alpha=0.05, gamma=0.02, n=N_SAMPLES,
                                epochs=EPOCHS, save_every=EVERY, depth=depth, backend=backend,
                                observables="all")
        # float64, the same recursion written independently on (k, m): rounding only, 1e-12
        np.testing.assert_allclose(tr.w, want, rtol=1e-12, atol=1e-14, err_msg=backend)
        np.testing.assert_allclose(tr.loss, loss, rtol=1e-12, atol=1e-14, err_msg=backend)


@pytest.mark.parametrize("case", ["signed", "piecewise"])
def test_scalar_flow_noise_values(case, x64):
    value, k, m = _noise_cases()[case]
    tau, depth, w2 = 20.0, 3, -0.45

    def rhs(t, y):
        a = y.reshape(depth, -1)
        u = np.prod(a, axis=0)
        return np.concatenate([(k(t) - m(t) * u) * np.prod([a[i] for i in range(depth) if i != l], axis=0)
                               / tau for l in range(depth)])

    y = np.concatenate([np.full(LAM.shape, W1)] * (depth - 1) + [np.full(LAM.shape, w2)])
    want = [np.prod(y.reshape(depth, -1), axis=0)]
    for t0, t1 in zip(FLOW_TS[:-1], FLOW_TS[1:]):
        y = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
        want.append(np.prod(y.reshape(depth, -1), axis=0))
    tr = dynamics.scalar_flow(jnp.asarray(FLOW_TS), LAM, w1=W1, w2=w2, noise=value, tau=tau, dt=0.01,
                              depth=depth)
    # RK4 at dt = 0.01 with the jumps on step ends (as above): bound 1e-8
    np.testing.assert_allclose(tr.w, np.array(want).T, rtol=0, atol=1e-8)


@pytest.mark.parametrize("value, reason", [
    (noise_mod.masking(0.2), "does not commute with Sigma"),
    (noise_mod.salt_and_pepper(0.2), "affine"),
    (noise_mod.gaussian_covariance(jnp.array([0.1, 0.2, 0.3])), "does not commute with Sigma"),
])
def test_noise_values_that_couple_directions_are_refused(value, reason):
    with pytest.raises(ValueError, match=reason):
        dynamics.scalar_gd(LAM, w1=W1, w2=W2, noise=value, alpha=0.05, epochs=2)


def test_noise_given_once():
    with pytest.raises(ValueError, match="give the noise once"):
        dynamics.scalar_gd(LAM, 0.5, W1, W2, noise=noise_mod.gaussian(0.1), alpha=0.05, epochs=2)
    with pytest.raises(ValueError, match="w1 and w2 are required"):
        dynamics.scalar_flow(jnp.asarray(FLOW_TS), LAM, noise=noise_mod.gaussian(0.1))


def test_simulate_scalar_noise_in_pieces(x64):
    """A scheduled corruption value run in pieces: each piece sees the schedules from its own start."""
    value, k, m = _noise_cases()["piecewise"]
    want, _ = _numpy_gd_km(3, k, m, W1, -0.45)
    tr = dynamics.simulate_scalar(LAM, w1=W1, w2=-0.45, noise=value, alpha=0.05, gamma=0.02, n=N_SAMPLES,
                                  epochs=EPOCHS, save_every=EVERY, depth=3, chunk_work=2 * EVERY * LAM.size)
    np.testing.assert_allclose(tr.w, want, rtol=1e-12, atol=1e-14)  # rounding only, as above


# ------------------------------------------------------------------------------------------------
# Corruption values in the matrix engines (noise=), against a NumPy GD loop on the data matrix: the
# moments M = sum_i E[x~ x~^T], K = sum_i E[x x~^T] of each corruption come from exact enumeration
# of every mask (D = 5: 32 masks per sample) or from the covariance's definition, never from
# daedyn's formulas; the loop is W_l <- W_l - alpha dL/dW_l with dL/dW = (W M - K) / N in the input
# basis, then rotated into the eigenbasis for the comparison.

from itertools import product as _masks  # noqa: E402

from daedyn import spectrum as spectrum_mod  # noqa: E402

XD, XN = 5, 12


def _data():
    rng = np.random.default_rng(11)
    return rng.uniform(0.0, 1.0, (XN, XD)) * np.array([1.0, 0.8, 0.6, 0.5, 0.3])


def _mask_moments(x, p, rescale):
    """Exact M and K of masking by enumerating all 2^D keep patterns with their probabilities."""
    m = np.zeros((XD, XD))
    k = np.zeros((XD, XD))
    for keep in _masks([0, 1], repeat=XD):
        keep = np.array(keep, float)
        prob = np.prod(np.where(keep == 1, 1 - p, p))
        xt = x * keep / ((1 - p) if rescale else 1.0)
        m += prob * xt.T @ xt
        k += prob * x.T @ xt
    return m, k


def _np_gd_data(ws, moments, gamma, alpha, epochs):
    """GD on the L factors in the input basis with M(t), K(t) of step j evaluated at t = j."""
    ws = [w.copy() for w in ws]
    for j in range(epochs):
        m, k = moments(j)
        g = (_np_product(ws) @ m - k) / XN
        grads = []
        for l, w in enumerate(ws):
            s = _np_product(ws[:l]) if l else np.eye(XD)
            q = _np_product(ws[l + 1:]) if l < len(ws) - 1 else np.eye(XD)
            grads.append(q.T @ g @ s.T + gamma * w)
        ws = [w - alpha * gr for w, gr in zip(ws, grads)]
    return ws


def _matrix_noise_cases(x):
    sigma = x.T @ x
    cov = np.array([0.02, 0.05, 0.01, 0.03, 0.04])
    pw = schedules.piecewise_constant([4.0], [0.2, 0.4])
    inv = {p: _mask_moments(x, p, True) for p in (0.2, 0.4)}
    return {
        "gaussian": (noise_mod.gaussian(0.03), lambda t: (sigma + XN * 0.03 * np.eye(XD), sigma)),
        "masking": (noise_mod.masking(0.3), lambda t, mk=_mask_moments(x, 0.3, True): mk),
        "raw-masking": (noise_mod.masking(0.3, rescale=False), lambda t, mk=_mask_moments(x, 0.3, False): mk),
        "covariance": (noise_mod.gaussian_covariance(cov), lambda t: (sigma + XN * np.diag(cov), sigma)),
        "masking-piecewise": (noise_mod.masking(pw), lambda t: inv[0.2 if t < 4.0 else 0.4]),
    }


@pytest.mark.parametrize("case, depth", _latin(["gaussian", "masking", "raw-masking", "covariance",
                                                "masking-piecewise"], [2, 3]))
def test_matrix_gd_noise_values(depth, case, x64):
    x = _data()
    spec = spectrum_mod.compute_spectrum(jnp.asarray(x))
    v = np.asarray(spec.eigvecs)
    value, moments = _matrix_noise_cases(x)[case]
    rng = np.random.default_rng(depth)
    sizes = (XD,) + (3,) * (depth - 1) + (XD,)
    ws0 = [0.3 * rng.standard_normal((sizes[l + 1], sizes[l])) for l in range(depth)]
    gamma, alpha, epochs = 0.01, 0.05, 10
    want = _np_gd_data(ws0, moments, gamma, alpha, epochs)
    eig0 = [ws0[0] @ v] + ws0[1:-1] + [v.T @ ws0[-1]]  # into the eigenbasis
    tr = dynamics.matrix_gd(spec, *eig0, noise=value, gamma=gamma, alpha=alpha, n=XN, epochs=epochs,
                            save_every=5, check_stability=False)
    got = [np.asarray(tr.ws[0]) @ v.T] + [np.asarray(w) for w in tr.ws[1:-1]] + [v @ np.asarray(tr.ws[-1])]
    for g, w in zip(got, want):
        # float64, 10 steps of the same GD written independently (moments by enumeration): 1e-11
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-11)
    # the saved mapping is the diagonal of V^T W V of the network itself (raw masking mapped back)
    np.testing.assert_allclose(tr.mapping[-1], np.diag(v.T @ _np_product(want) @ v), atol=1e-11)


def test_matrix_noise_refusals():
    x = _data()
    spec = spectrum_mod.compute_spectrum(jnp.asarray(x))
    w = [0.1 * np.eye(XD)] * 2
    with pytest.raises(ValueError, match="Spectrum as eigvals"):
        dynamics.matrix_gd(spec.eigvals, *w, noise=noise_mod.masking(0.2), alpha=0.05, n=XN, epochs=2)
    with pytest.raises(ValueError, match="changes with time"):
        dynamics.matrix_gd(spec, *w, noise=noise_mod.masking(schedules.piecewise_constant([2.0], [0.1, 0.2]),
                                                           rescale=False), alpha=0.05, n=XN, epochs=2)
    with pytest.raises(ValueError, match="give the noise once"):
        dynamics.matrix_gd(spec, *w, eps=0.1, noise=noise_mod.gaussian(0.1), alpha=0.05, n=XN, epochs=2)
    with pytest.raises(ValueError, match="salt|affine|marginal"):
        dynamics.matrix_gd(spec, *w, noise=noise_mod.salt_and_pepper(0.1), alpha=0.05, n=XN, epochs=2)


@pytest.mark.parametrize("case", ["raw-masking", "masking-piecewise"])
def test_matrix_flow_noise_values(case, x64):
    x = _data()
    spec = spectrum_mod.compute_spectrum(jnp.asarray(x))
    v = np.asarray(spec.eigvecs)
    value, moments = _matrix_noise_cases(x)[case]
    rng = np.random.default_rng(5)
    ws0 = [0.3 * rng.standard_normal((3, XD)), 0.3 * rng.standard_normal((XD, 3))]
    tau, gamma, ts = 30.0, 0.01, np.array([0.0, 4.0, 9.0])

    def rhs(t, y):  # tau dW_l/dt = -N dL/dW_l on the data's moments (input basis)
        w1, w2 = y[:3 * XD].reshape(3, XD), y[3 * XD:].reshape(XD, 3)
        m, k = moments(t)
        g = (w2 @ w1 @ m - k) / XN
        return -XN * np.concatenate([(w2.T @ g + gamma * w1).ravel(), (g @ w1.T + gamma * w2).ravel()]) / tau

    y = np.concatenate([w.ravel() for w in ws0])
    for t0, t1 in zip(ts[:-1], ts[1:]):  # piece by piece: the jump at 4 is a save time
        y = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
    want = [y[:3 * XD].reshape(3, XD), y[3 * XD:].reshape(XD, 3)]
    tr = dynamics.matrix_flow(jnp.asarray(ts), spec, ws0[0] @ v, v.T @ ws0[1], noise=value, gamma=gamma,
                              tau=tau, n=XN, dt=0.01)
    # RK4 at dt = 0.01 against DOP853 at rtol 1e-12: bound 1e-8
    np.testing.assert_allclose(np.asarray(tr.ws[0]) @ v.T, want[0], atol=1e-8)
    np.testing.assert_allclose(v @ np.asarray(tr.ws[1]), want[1], atol=1e-8)
