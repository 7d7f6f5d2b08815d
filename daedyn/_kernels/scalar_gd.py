"""Fused gradient-descent recursion for the per-direction dynamics, any depth, piecewise-constant rates.

One direction of a linear DAE with L weight matrices, trained from a start where the first L - 1
factors are equal (value ``w1``) and the last is ``w2``, keeps that shape (the L - 1 equal factors obey
the same equation from the same start), so two numbers describe it at every depth. With the
direction's quadratic-form coefficients ``k`` (target-input cross moment; lam for every unbiased
corruption) and ``m`` (input second moment; lam + eps for Gaussian noise), the mapping
u = w1^(L-1) w2 and tau = n / alpha, one epoch of full-batch GD is

    h = (k - m u) / tau
    w1 <- (1 - n gamma / tau) w1 + h w1^(L-2) w2        (du/dw1 of one of the L - 1 equal factors)
    w2 <- (1 - n gamma / tau) w2 + h w1^(L-1)           (du/dw2)

with the per-trajectory constants folded (a = k / tau, b = m / tau, c = 1 - n gamma / tau), so an
epoch costs 6 multiply/FMA operations at depth 2 (h = a - b w1 w2; w1' = c w1 + h w2; w2' = c w2 + h w1).

**Piecewise-constant rates** (``boundaries``): every coefficient may be a table of K + 1 rows, row i
in force on piece i; step j (from epoch j to j + 1) uses the row of the piece holding t = j, i.e.
``#{boundaries <= j}``. The folded tables are built once, so a step reads one row per coefficient
where a constant run reads one array: a scheduled run costs what a constant one does.

The recursion is elementwise over trajectories, so its cost is the write of the saved values.
On a GPU a Pallas kernel keeps (w1, w2) of a block of trajectories in registers for the whole run
and writes only the saved values: measured 85% of the H100's write bandwidth for 10^6
trajectories x 10^3 saved epochs at depth 2 with constant rates (a ``lax.scan`` over epochs reaches
~10%). Elsewhere the same recursion runs as a ``lax.scan`` over saves with an inner loop over
``save_every`` epochs.

Layout: results are time-major, shape (n_saves, B): each saved epoch is one contiguous, coalesced
row write. Callers that want (B, n_saves) transpose (an extra pass over the output). With
``with_start=True`` the start (epoch 0) is saved too, as row 0 written by the same program, so a
caller that wants it pays no concatenation (another pass over the output).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

QUANTITIES = ("w1", "w2", "w", "weight_norm")


def fold(k, m, ng, inv_tau):
    """Per-trajectory (or per-piece) constants folded so one epoch costs 6 multiply/FMA operations.

    A (K + 1, B) table times a (B,) array is a table (the array gets its piece axis explicitly)."""
    def mul(x, y):
        if x.ndim != y.ndim:
            x, y = (v[None] if v.ndim < max(x.ndim, y.ndim) else v for v in (x, y))
        return x * y

    return mul(inv_tau, k), mul(inv_tau, m), 1 - mul(inv_tau, ng)


def power(x, e):
    """x**e for a static integer e >= 0 by repeated multiplication (None for e = 0: no work)."""
    out = None
    for _ in range(e):
        out = x if out is None else out * x
    return out


def step(w1, w2, a, b, c, depth):
    """One GD epoch of the two-value state from the folded coefficients (module docstring)."""
    if depth == 2:  # h = (k - m w1 w2) / tau;  w1' = (1 - n gamma / tau) w1 + h w2, same for w2
        h = a - b * (w1 * w2)
        return c * w1 + h * w2, c * w2 + h * w1
    p = power(w1, depth - 2)
    d1 = p * w2  # du/dw1 (one of the L - 1 equal factors)
    d2 = p * w1  # du/dw2 = w1^(L-1)
    h = a - b * (d2 * w2)
    return c * w1 + h * d1, c * w2 + h * d2


def observe(w1, w2, quantities, depth):
    """The saved quantities of the two-value state (w = w1^(L-1) w2, weight_norm = (L-1) w1^2 + w2^2)."""
    def w():
        return w1 * w2 if depth == 2 else power(w1, depth - 1) * w2

    table = {"w1": lambda: w1, "w2": lambda: w2, "w": w,
             "weight_norm": lambda: (depth - 1) * (w1 * w1) + w2 * w2 if depth > 2 else w1 * w1 + w2 * w2}
    return tuple(table[q]() for q in quantities)


def pallas_available() -> bool:
    """True when the default backend is a GPU on which Pallas (Triton/Mosaic GPU) can run."""
    return jax.default_backend() == "gpu"


_UNROLL = 8


def _index_rows(coef, bounds):
    """``j -> coefficients at step j``: rows of the (K + 1, B) tables picked by ``#{bounds <= j}`` (a
    dynamic row read; arrays without a piece axis pass through)."""
    if bounds is None:
        return lambda j: coef

    def at(j):
        i = jnp.sum(bounds <= j.astype(bounds.dtype))
        return tuple(lax.dynamic_index_in_dim(x, i, keepdims=False) if x.ndim == 2 else x for x in coef)

    return at


def _select_rows(coef, bounds):
    """The same as :func:`_index_rows` as a chain of selects (elementwise: what a Pallas kernel lowers)."""
    if bounds is None:
        return lambda j: coef

    def at(j):
        t = j.astype(bounds.dtype)
        out = []
        for x in coef:
            if x.ndim == 2:
                v = x[0]
                for i in range(bounds.shape[0]):
                    v = jnp.where(t >= bounds[i], x[i + 1], v)
                x = v
            out.append(x)
        return tuple(out)

    return at


def _advance(c, at, save_every, depth, start):
    """``save_every`` epochs from epoch ``start`` (an int32 scalar): a plain loop over a Python-unrolled
    body (Pallas/Triton lowers no ``unroll=`` argument), then the remainder unrolled. ``at(j)`` gives
    step j's folded coefficients."""
    def chunk(i, c):
        for u in range(_UNROLL):
            c = step(*c, *at(start + i * _UNROLL + u), depth)
        return c

    n_chunks, rest = divmod(save_every, _UNROLL)
    if n_chunks:
        c = lax.fori_loop(0, n_chunks, chunk, c)
    for u in range(rest):
        c = step(*c, *at(start + n_chunks * _UNROLL + u), depth)
    return c


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "quantities", "with_start", "depth"))
def _scan_path(k, m, ng, inv_tau, w1, w2, bounds=None, *, n_saves, save_every, quantities, with_start=False,
               depth=2):
    at = _index_rows(fold(k, m, ng, inv_tau), bounds)
    one = jnp.int32(save_every)

    def body(c, s):
        c = _advance(c, at, save_every, depth, s * one)
        return c, observe(*c, quantities, depth)

    if with_start and save_every == 1:
        # save, then step, n_saves + 1 times: the last step is wasted (1 epoch in n_saves), but the
        # start lands in row 0 of the scan's own output. Measured on the 2-core CPU (10^5 x 10^3, w):
        # 1.15x the time of the scan without the start; concatenating the start row: 1.9x.
        def save_then_step(c, s):
            return _advance(c, at, 1, depth, s), observe(*c, quantities, depth)

        return lax.scan(save_then_step, (w1, w2), jnp.arange(n_saves + 1, dtype=jnp.int32))[1]
    _, out = lax.scan(body, (w1, w2), jnp.arange(n_saves, dtype=jnp.int32))
    if with_start:  # sparse saves: the copy is small next to save_every epochs of work per row
        out = tuple(jnp.concatenate([f[None], o]) for f, o in zip(observe(w1, w2, quantities, depth), out))
    return out


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "quantities", "block", "interpret",
                                             "time_major", "with_start", "depth", "tables"))
def _pallas_path(k, m, ng, inv_tau, w1, w2, bounds=None, *, n_saves, save_every, quantities, block, interpret,
                 time_major, with_start=False, depth=2, tables=(False,) * 4):
    from jax.experimental import pallas as pl

    n = w1.shape[0]
    nq = len(quantities)
    rows = n_saves + int(with_start)
    n_in = 6 + (bounds is not None)

    def kernel(*refs):
        in_refs, out_refs = refs[:n_in], refs[n_in:]
        bnd = in_refs[6][...] if bounds is not None else None
        at = _select_rows(fold(*(r[...] for r in in_refs[:4])), bnd)

        def save(s, c):
            for ref, v in zip(out_refs, observe(*c, quantities, depth)):
                if time_major:
                    ref[s, :] = v
                else:
                    ref[:, s] = v

        def body(s, c):
            c = _advance(c, at, save_every, depth, s * save_every)
            save(s + int(with_start), c)
            return c

        c0 = (in_refs[4][...], in_refs[5][...])
        if with_start:
            save(0, c0)
        lax.fori_loop(0, n_saves, body, c0)

    vec = pl.BlockSpec((block,), lambda i: (i,))
    in_specs = [pl.BlockSpec((bounds.shape[0] + 1, block), lambda i: (0, i)) if tab else vec
                for tab in tables] + [vec, vec]
    args = [k, m, ng, inv_tau, w1, w2]
    if bounds is not None:
        in_specs.append(pl.BlockSpec(bounds.shape, lambda i: (0,)))
        args.append(bounds)
    if time_major:
        out_spec = pl.BlockSpec((rows, block), lambda i: (0, i))
        shape = jax.ShapeDtypeStruct((rows, n), w1.dtype)
    else:
        out_spec = pl.BlockSpec((block, rows), lambda i: (i, 0))
        shape = jax.ShapeDtypeStruct((n, rows), w1.dtype)
    return pl.pallas_call(
        kernel,
        grid=(n // block,),
        in_specs=in_specs,
        out_specs=[out_spec] * nq,
        out_shape=[shape] * nq,
        interpret=interpret,
    )(*args)


def scalar_gd_fused(k, m, ng, inv_tau, w1, w2, *, n_saves: int, save_every: int = 1,
                    quantities: tuple[str, ...] = ("w",), backend: str = "auto", block: int = 1024,
                    time_major: bool = True, with_start: bool = False, depth: int = 2, boundaries=None):
    """Run ``n_saves * save_every`` GD epochs on flat (B,) arrays; return a tuple of saved arrays.

    Each saved array is (S, B) when ``time_major`` (coalesced row writes, fastest) and (B, S)
    otherwise, with S = n_saves, or n_saves + 1 with ``with_start`` (row 0 the start).

    Args:
      k, m, ng, inv_tau: (B,) arrays: the direction's cross moment k and input moment m (lam and
        lam + eps for Gaussian noise), n * gamma and 1 / tau = alpha / n; with ``boundaries``, any of
        them may instead be a (K + 1, B) table, row i in force on piece i.
      w1, w2: (B,) starts: the common value of the first depth - 1 factors, and the last factor.
      n_saves: number of saved epochs; the state after epochs save_every, 2 save_every, ... is saved.
      save_every: epochs between saves (>= 1).
      quantities: which of ``QUANTITIES`` to save, in order (w = w1^(depth-1) w2; weight_norm =
        (depth - 1) w1^2 + w2^2).
      backend: "pallas" (GPU kernel), "interpret" (the same kernel interpreted, for CPU tests),
        "jnp" (lax.scan), or "auto" (pallas on GPU, jnp elsewhere). The Pallas kernel is
        differentiable (jvp and grad go through the lax.scan path's recursion).
      block: trajectories per Pallas program (B is padded to a multiple of it).
      time_major: (S, B) outputs (default) or (B, S).
      with_start: save the start as row 0 too (S = n_saves + 1), in the same program.
      depth: number of weight matrices L (static int >= 2).
      boundaries: (K,) non-decreasing piece boundaries (epochs) of the tables, or None (constants).
    """
    unknown = set(quantities) - set(QUANTITIES)
    if unknown:
        raise ValueError(f"quantities must be among {QUANTITIES}; got {sorted(unknown)}")
    if not (isinstance(depth, int) and depth >= 2):
        raise ValueError(f"depth must be an int >= 2; got {depth!r}")
    if backend == "auto":
        backend = "pallas" if pallas_available() else "jnp"
    args = [jnp.asarray(a) for a in (k, m, ng, inv_tau, w1, w2)]
    bounds = None if boundaries is None else jnp.asarray(boundaries)
    tables = tuple(a.ndim == 2 for a in args[:4])
    if any(tables) and bounds is None:
        raise ValueError("coefficient tables (2-d k, m, ng or inv_tau) need boundaries")
    if bounds is not None and any(a.shape[0] != bounds.shape[0] + 1 for a, t in zip(args, tables) if t):
        raise ValueError(f"every table needs len(boundaries) + 1 = {bounds.shape[0] + 1} rows; got "
                         f"{[a.shape for a in args[:4]]}")
    kw = dict(n_saves=int(n_saves), save_every=int(save_every), quantities=tuple(quantities),
              with_start=bool(with_start), depth=depth)
    if backend == "jnp":
        out = _scan_path(*args, bounds, **kw)
        return tuple(out if time_major else (o.T for o in out))
    if backend not in ("pallas", "interpret"):
        raise ValueError(f"backend must be 'auto', 'pallas', 'interpret' or 'jnp'; got {backend!r}")
    n = args[4].shape[0]
    block = max(1, min(block, n))
    pad = (-n) % block
    if pad:  # padded trajectories start at the saddle w1 = w2 = 0 and stay finite
        args = [jnp.pad(a, ((0, 0), (0, pad)) if a.ndim == 2 else (0, pad)) for a in args]
    f = _differentiable_pallas(**kw, block=block, interpret=backend == "interpret", time_major=time_major,
                               tables=tables)
    return tuple(o[:, :n] if time_major else o[:n] for o in f(*args, bounds))


@functools.cache
def _differentiable_pallas(**kw):
    """The Pallas kernel with derivatives taken through the lax.scan path (``pallas_call`` has no
    reverse-mode rule): forward runs use the kernel, ``jax.jvp`` / ``jax.grad`` the same recursion
    as ``_scan_path``, whose values equal the kernel's up to float rounding."""
    time_major = kw.pop("time_major")
    scan_kw = {k: kw[k] for k in ("n_saves", "save_every", "quantities", "with_start", "depth")}

    def scan(*args):
        out = _scan_path(*args, **scan_kw)
        return tuple(out if time_major else (o.T for o in out))

    @jax.custom_jvp
    def f(*args):
        return tuple(_pallas_path(*args, **kw, time_major=time_major))

    @f.defjvp
    def _jvp(primals, tangents):
        return jax.jvp(scan, primals, tangents)

    return f
