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
``save_every`` epochs, carrying (w1, w2) as one complex number (float32/float64: :func:`_advance`).

Layout: results are time-major, shape (n_saves, B): each saved epoch is one contiguous, coalesced
row write. Callers that want (B, n_saves) transpose (an extra pass over the output). With
``with_start=True`` the start (epoch 0) is saved too, as row 0 written by the same program, so a
caller that wants it pays no concatenation (another pass over the output).

**Reverse mode** (``adjoint="checkpoint"``, the default of :func:`scalar_gd_fused`). Write one step with
p = w1^(L-2) (1 at depth 2) and u = w1^(L-1) w2 as  w1' = c w1 + h p w2,  w2' = c w2 + h p w1,
h = a - b u. From the cotangents (g1, g2) of (w1', w2'), by hand (:func:`step_adjoint`):

    dh = g1 p w2 + g2 p w1          (the cotangent of h: da = dh, db = -dh u)
    dc = g1 w1 + g2 w2
    depth 2:  g1 <- c g1 + h g2 - b dh w2,   g2 <- c g2 + h g1 - b dh w1
    depth L:  with du = -b dh, e1 = h g1, e2 = h g2 + du w2 (cotangents of p w2 and p w1) and
              ep = e1 w2 + e2 w1 (of p):  g1 <- c g1 + e2 p + (L - 2) w1^(L-3) ep,
                                          g2 <- c g2 + du p w1 + e1 p

and, through the fold a = k / tau, b = m / tau, c = 1 - n gamma / tau, the step's share of the
cotangents of the inputs: k: dh / tau, m: db / tau, n gamma: -dc / tau, 1 / tau: k dh + m db - n gamma dc
(each with its row's values); a table's cotangent sums the steps of each row, an array's all steps. The
boundaries get a zero cotangent: the recursion is piecewise constant in them (moving one moves no step
until it crosses an integer, where the run jumps). A saved row's cotangent enters (g1, g2) through the
derivative of the saved quantity at its save point.

Few perturbed constants (no tables, at most ``_MAX_TANGENTS`` = 2 of k, m, n gamma, 1 / tau, w1, w2
differentiated, as when one hyperparameter is tuned): every output element depends on its own
direction's inputs only, so the forward pass carries the tangent of each perturbed input along (forward
mode on the packed state: one more fused loop of ~16 operations a step each) and keeps the Jacobian of
every saved row; the backward pass is the elementwise product with the cotangents and a sum over rows.
This costs 6 + 16 T operations a step against ~44 for the reverse sweep below.

Otherwise the forward pass keeps the state at the start of every block of S steps (S = 16, or with
tables about the mean piece length, at least 2; n_steps / S x B values); the backward pass takes the
blocks in reverse, recomputes each from its mark and runs its adjoint steps backwards, both unrolled in
one piece of code (a loop iteration per step costs more than the step on XLA:CPU). (w1, w2) and
(g1, g2) are packed as one complex number each (float32/float64; other dtypes use "autodiff"):
XLA:CPU computes each result of a fused loop in its own loop, repeating the shared work, and a complex
result is one. A table's cotangent is kept per block as two sums, the steps on the block's first row
and on the other; when a block meets three rows or more (pieces shorter than a block), the whole
backward pass runs again with blocks of two steps, which meet two rows at most (a run-time
``lax.cond``: same gradient, marks recomputed, slower). The Pallas kernel's backward pass recomputes
the marks on the lax.scan path. Measured cost, value and gradient over value, on the 2-core CPU:
docs/dynamics.md.

Forward mode: the adjoint is a ``jax.custom_vjp``, which JAX refuses to push tangents through
(``jax.jvp``, ``jax.jacfwd`` raise a TypeError naming custom_vjp); forward-over-reverse
(``jax.hessian``, ``jax.jvp`` of ``jax.grad``) works: it differentiates the forward and backward passes
above (tested against "autodiff"). ``adjoint="autodiff"`` lets JAX differentiate the recursion in both
modes (the Pallas kernel: its ``custom_jvp``), as diffrax's ``DirectAdjoint`` next to its default
``RecursiveCheckpointAdjoint``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
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


def _step_rows(bounds, n_steps: int):
    """(n_steps,) int32: the table row of each step, ``#{bounds <= j}`` (one sorted search for the run,
    where a per-step count costs O(K) every step)."""
    j = jnp.arange(n_steps, dtype=jnp.int32).astype(bounds.dtype)
    return jnp.searchsorted(bounds, j, side="right").astype(jnp.int32)


def _index_rows(coef, rows):
    """``j -> coefficients at step j``: rows ``rows[j]`` of the (K + 1, B) tables (a dynamic row read;
    arrays without a piece axis pass through; ``rows`` from :func:`_step_rows`, None for constants)."""
    if rows is None:
        return lambda j: coef

    def at(j):
        i = rows[j]
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


#: steps per loop iteration on the complex-packed state of :func:`_scan_path` (measured on the 2-core CPU,
#: float32/64, depth 2/3, 784 .. 10^5 trajectories: 4 beat 8 by 1.0-1.8x, and 2 was no faster)
_UNROLL_PACKED = 4


def _packable(c) -> bool:
    """True when the state can ride the loops as one complex number (float32 / float64)."""
    return c[0].dtype in (jnp.float32, jnp.float64)


def _advance(c, at, save_every, depth, start, packed=False):
    """``save_every`` epochs from epoch ``start`` (an int32 scalar): a plain loop over a Python-unrolled
    body (Pallas/Triton lowers no ``unroll=`` argument), then the remainder unrolled. ``at(j)`` gives
    step j's folded coefficients. ``packed``: the loop carries (w1, w2) as one complex array
    (:func:`_pack`; XLA:CPU computes each real result of the fused steps in its own loop, repeating the
    shared work: 1.2-1.8x faster packed, measured)."""
    unroll = _UNROLL_PACKED if packed else _UNROLL

    def chunk(i, c):
        c = _unpack(c) if packed else c
        for u in range(unroll):
            c = step(*c, *at(start + i * unroll + u), depth)
        return _pack(*c) if packed else c

    n_chunks, rest = divmod(save_every, unroll)
    if n_chunks:
        c = lax.fori_loop(0, n_chunks, chunk, _pack(*c) if packed else c)
        c = _unpack(c) if packed else c
    for u in range(rest):
        c = step(*c, *at(start + n_chunks * unroll + u), depth)
    return c


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "quantities", "with_start", "depth"))
def _scan_path(k, m, ng, inv_tau, w1, w2, bounds=None, *, n_saves, save_every, quantities, with_start=False,
               depth=2):
    rows = None if bounds is None else _step_rows(bounds, n_saves * save_every + 1)
    at = _index_rows(fold(k, m, ng, inv_tau), rows)
    one = jnp.int32(save_every)

    packed = _packable((w1, w2))

    def body(c, s):
        c = _advance(c, at, save_every, depth, s * one, packed)
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
                    time_major: bool = True, with_start: bool = False, depth: int = 2, boundaries=None,
                    adjoint: str = "checkpoint"):
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
      adjoint: how derivatives are taken. "checkpoint" (default): reverse mode (``jax.grad``,
        ``jax.vjp``) by the hand-written adjoint of the recursion (module docstring, "Reverse mode"),
        a ``jax.custom_vjp`` that refuses forward mode (``jax.jvp``, ``jax.jacfwd``; ``jax.hessian``,
        forward-over-reverse, works). "autodiff": JAX differentiates the lax.scan recursion, both
        modes (reverse mode 7-54x the cost of the run on the 2-core CPU, against 2.3-15x; docs/dynamics.md).
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
    if adjoint not in ("checkpoint", "autodiff"):
        raise ValueError(f"adjoint must be 'checkpoint' or 'autodiff'; got {adjoint!r}")
    if bounds is not None and bounds.shape[0] == 0:  # one piece: the tables' only row is a constant
        args, bounds, tables = [a[0] if a.ndim == 2 else a for a in args], None, (False,) * 4
    kw = dict(n_saves=int(n_saves), save_every=int(save_every), quantities=tuple(quantities),
              with_start=bool(with_start), depth=depth)
    # the hand-written adjoint packs (w1, w2) as one complex number: float32 and float64 only
    adjoint = adjoint if kw["n_saves"] and args[4].dtype in (jnp.float32, jnp.float64) else "autodiff"
    if backend == "jnp":
        if adjoint == "checkpoint":
            out = _checkpointed(*kw.values())(*args, bounds)
        else:
            out = _scan_path(*args, bounds, **kw)
        return tuple(out if time_major else (o.T for o in out))
    if backend not in ("pallas", "interpret"):
        raise ValueError(f"backend must be 'auto', 'pallas', 'interpret' or 'jnp'; got {backend!r}")
    n = args[4].shape[0]
    block = max(1, min(block, n))
    pad = (-n) % block
    if pad:  # padded trajectories start at the saddle w1 = w2 = 0 and stay finite
        args = [jnp.pad(a, ((0, 0), (0, pad)) if a.ndim == 2 else (0, pad)) for a in args]
    pkw = dict(block=block, interpret=backend == "interpret", time_major=time_major, tables=tables)
    if adjoint == "checkpoint":
        f = _checkpointed(*kw.values(), pallas=tuple(pkw.items()))
    else:
        f = _differentiable_pallas(**kw, **pkw)
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


# ---------------------------------------------------------------------------------------------------
# Reverse mode: a checkpointed adjoint of the recursion (module docstring, "Reverse mode")

_SEGMENT = 16  # steps recomputed and reversed as one unrolled block of the backward pass


def step_adjoint(w1, w2, a, b, c, g1, g2, depth):
    """One step backwards: from the cotangents (g1, g2) of a step's outputs (w1', w2') and its inputs
    (w1, w2), ``(g1_in, g2_in, dh, u, dc)``: the cotangents of w1 and w2, of h (= that of a; that of b
    is -dh u) with u = w1^(L-1) w2, and of c (module docstring, "Reverse mode")."""
    if depth == 2:
        u = w1 * w2
        h = a - b * u
        dh = g1 * w2 + g2 * w1
        q = b * dh
        return c * g1 + h * g2 - q * w2, c * g2 + h * g1 - q * w1, dh, u, g1 * w1 + g2 * w2
    p = power(w1, depth - 2)
    d1, d2 = p * w2, p * w1
    u = d2 * w2
    h = a - b * u
    dh = g1 * d1 + g2 * d2
    du = -(b * dh)
    gd1, gd2 = g1 * h, g2 * h + du * w2
    gp = gd1 * w2 + gd2 * w1  # cotangent of p = w1^(L-2)
    gw1 = c * g1 + gd2 * p + (depth - 2) * (gp if depth == 3 else gp * power(w1, depth - 3))
    return gw1, c * g2 + du * d2 + gd1 * p, dh, u, g1 * w1 + g2 * w2


def _pack(x, y):
    """Two real arrays as one complex array: XLA:CPU computes a complex result in one fused loop, where
    two real results are two loops that each repeat the shared work (measured 1.5-2x faster)."""
    return lax.complex(x, y)


def _unpack(z):
    return jnp.real(z), jnp.imag(z)


def segment_length(n_steps: int, n_rows: int) -> int:
    """Steps per backward block: ``_SEGMENT``, or with (n_rows, B) tables about the mean piece length
    (at least 2), so that a block rarely meets more than two pieces (module docstring)."""
    if n_rows <= 1:
        return _SEGMENT
    return max(2, min(_SEGMENT, n_steps // n_rows))


def _checkpointed_forward(coef, w1, w2, rows, *, n_saves, save_every, quantities, depth, seg):
    """The recursion, saving ``quantities`` (n_saves, B) and the state (complex w1 + i w2) at the start of
    every block: ``(outputs, marks (n_saves, q + (r > 0), B), final state)`` with q, r = divmod(save_every,
    seg) (q blocks of ``seg`` steps and one of r per save interval)."""
    at = _index_rows(coef, rows)
    q, r = divmod(save_every, seg)

    def run(z, start, length):
        c = _unpack(z)
        for u in range(length):
            c = step(*c, *at(start + u), depth)
        return _pack(*c)

    def per_save(z, s):
        start = s * save_every
        marks = []
        if q:
            z, m = lax.scan(lambda z, i: (run(z, start + i * seg, seg), z), z, jnp.arange(q, dtype=jnp.int32))
            marks.append(m)
        if r:
            marks.append(z[None])
            z = run(z, start + q * seg, r)
        marks = jnp.concatenate(marks) if len(marks) > 1 else marks[0]
        return z, (observe(*_unpack(z), quantities, depth), marks)

    final, (out, marks) = lax.scan(per_save, _pack(w1, w2), jnp.arange(n_saves, dtype=jnp.int32))
    return out, marks, final


def _block_steps(n_saves, save_every, seg):
    """The first and last step of every backward block, in the order of the marks (NumPy, (n_blocks,))."""
    q, r = divmod(save_every, seg)
    first = [i * seg for i in range(q)] + ([q * seg] if r else [])
    last = [f + seg - 1 for f in first[:q]] + ([save_every - 1] if r else [])
    base = np.arange(n_saves)[:, None] * save_every
    return tuple((base + np.array(v)[None]).ravel() for v in (first, last))


def _blocks_meet_two_pieces_at_most(rows, *, n_saves, save_every, seg):
    """True when no backward block meets more than two rows of the tables (the fast accumulation's
    condition)."""
    first, last = _block_steps(n_saves, save_every, seg)
    change = (rows[1:] != rows[:-1]).astype(jnp.int32)
    changes = jnp.cumsum(jnp.concatenate([jnp.zeros((1,), jnp.int32), change]))
    return jnp.all(changes[last] - changes[first] <= 1)


def _adjoint(coef, unfolded, targets, rows, marks, final, cots, *, n_saves, save_every, quantities,
             with_start, depth, seg):
    """Cotangents of the start (w1, w2) and of the unfolded inputs listed in ``targets`` (indices into
    (k, m, ng, inv_tau)), from the saved rows' cotangents ``cots`` (None: zero). Each block of steps is
    recomputed from its mark and reversed in one unrolled piece of code; a table's cotangent is summed by
    row, the block's steps on its first row and on the others (at most one other: see
    :func:`_blocks_meet_two_pieces_at_most`) kept apart."""
    at = _index_rows(coef, rows)
    at_unfolded = _index_rows(unfolded, rows)
    q, r = divmod(save_every, seg)
    tabled = [unfolded[t].ndim == 2 for t in targets]
    live = [i for i, ct in enumerate(cots) if ct is not None]
    shift = int(with_start)

    def inject(g, z, s):
        if not live:
            return g
        qs = tuple(quantities[i] for i in live)
        _, pull = jax.vjp(lambda x, y: observe(x, y, qs, depth), *_unpack(z))
        d1, d2 = pull(tuple(cots[i][s] for i in live))
        return g + _pack(d1, d2)

    def contributions(j, dh, u, dc):
        k, m, ng, it = at_unfolded(j)
        db = -(dh * u)
        full = (lambda: it * dh, lambda: it * db, lambda: -(it * dc), lambda: k * dh + m * db - ng * dc)
        return [full[t]() for t in targets]

    def block(carry, z0, j0, length):
        """``length`` steps from epoch j0: recompute from the mark z0, then the adjoints backwards."""
        g, accs = carry
        states = [_unpack(z0)]
        for v in range(length - 1):
            states.append(step(*states[-1], *at(j0 + v), depth))
        g = _unpack(g)
        first = None if rows is None else rows[j0]
        sums = [None] * len(targets)
        for v in reversed(range(length)):
            g1, g2, dh, u, dc = step_adjoint(*states[v], *at(j0 + v), *g, depth)
            g = (g1, g2)
            for n, (x, tab) in enumerate(zip(contributions(j0 + v, dh, u, dc), tabled)):
                if tab:  # (on the block's first row, on the next one)
                    other = rows[j0 + v] != first
                    x = (jnp.where(other, 0, x), jnp.where(other, x, 0))
                    sums[n] = x if sums[n] is None else (sums[n][0] + x[0], sums[n][1] + x[1])
                else:
                    sums[n] = x if sums[n] is None else sums[n] + x
        consts = [x for x, tab in zip(sums, tabled) if not tab]
        consts += [jnp.zeros_like(g[0])] * (len(consts) % 2)
        # one fused loop per pair
        packed = [_pack(consts[i], consts[i + 1]) for i in range(0, len(consts), 2)]
        flat = iter([y for z in packed for y in _unpack(z)])
        accs = tuple(acc + next(flat) for acc in accs)
        # a table's (first row, other row) sums of the block: written out, added by row after the loop
        rows_out = tuple(_pack(*x) for x, tab in zip(sums, tabled) if tab)
        return (_pack(*g), accs), rows_out

    ends = jnp.concatenate([marks[1:, 0], final[None]])  # the state at every save

    def per_save(carry, xs):
        s, m, end = xs
        g, accs = carry
        carry = (inject(g, end, s + shift), accs)
        start = s * save_every
        outs = []
        if r:
            carry, o = block(carry, m[q], start + q * seg, r)
            outs.append(jax.tree.map(lambda x: x[None], o))
        if q:
            def one(carry, b):
                return block(carry, m[b], start + b * seg, seg)
            carry, o = lax.scan(one, carry, jnp.arange(q, dtype=jnp.int32), reverse=True)
            outs.insert(0, o)
        return carry, tuple(jnp.concatenate(x) if len(x) > 1 else x[0] for x in zip(*outs)) if outs else ()

    const = [t for t, tab in zip(targets, tabled) if not tab]
    accs = tuple(jnp.zeros(unfolded[t].shape, final.real.dtype) for t in const)
    (g, accs), per_block = lax.scan(per_save, (jnp.zeros_like(final), accs),
                                    (jnp.arange(n_saves, dtype=jnp.int32), marks, ends), reverse=True)
    if with_start:
        g = inject(g, marks[0, 0], 0)
    out = dict(zip(const, accs))
    if per_block:
        first, last = _block_steps(n_saves, save_every, seg)
        lo_rows, hi_rows = rows[first], rows[last]
        for t, x in zip([t for t, tab in zip(targets, tabled) if tab], per_block):
            lo, hi = _unpack(x.reshape(-1, x.shape[-1]))
            acc = jnp.zeros(unfolded[t].shape, lo.dtype)
            acc = acc.at[lo_rows].add(lo, indices_are_sorted=True)
            out[t] = acc.at[hi_rows].add(hi, indices_are_sorted=True)
    return _unpack(g), tuple(out[t] for t in targets)


def _packed_run(k, m, ng, inv_tau, w1, w2, *, n_saves, save_every, quantities, with_start, depth):
    """The recursion with constant coefficients on the complex-packed state (the saved rows as
    :func:`_scan_path`'s): under ``jax.jvp`` its loops carry (state, tangent) as two complex arrays, two
    fused loops per chunk of steps."""
    coef = fold(k, m, ng, inv_tau)

    def chunk(length):
        def run(_, z):
            c = _unpack(z)
            for _ in range(length):
                c = step(*c, *coef, depth)
            return _pack(*c)
        return run

    def per_save(z, _):
        n, rest = divmod(save_every, _UNROLL)
        if n:
            z = lax.fori_loop(0, n, chunk(_UNROLL), z)
        if rest:
            z = chunk(rest)(0, z)
        return z, observe(*_unpack(z), quantities, depth)

    _, out = lax.scan(per_save, _pack(w1, w2), None, length=n_saves)
    if with_start:
        out = tuple(jnp.concatenate([f[None], o]) for f, o in zip(observe(w1, w2, quantities, depth), out))
    return out


#: forward mode inside the forward pass for at most this many perturbed inputs (module docstring)
_MAX_TANGENTS = 2


@functools.cache
def _checkpointed(n_saves, save_every, quantities, with_start, depth, pallas=None):
    """The recursion on the unfolded inputs ``(k, m, ng, inv_tau, w1, w2, bounds)`` with reverse mode by
    :func:`_adjoint` (a ``jax.custom_vjp``, so forward mode is refused). The primal is the lax.scan path,
    or with ``pallas`` (the kernel's static arguments as a tuple of items) the Pallas kernel, whose
    backward pass recomputes the marks on the lax.scan path."""
    kw = dict(n_saves=n_saves, save_every=save_every, quantities=quantities, depth=depth)
    pkw = None if pallas is None else dict(pallas)
    batch_major = pkw is not None and not pkw["time_major"]
    n_steps = n_saves * save_every

    def primal(*args):
        if pkw is None:
            return tuple(_scan_path(*args, **kw, with_start=with_start))
        return tuple(_pallas_path(*args, **kw, with_start=with_start, **pkw))

    def seg_of(unfolded):
        return segment_length(n_steps, max(x.shape[0] if x.ndim == 2 else 1 for x in unfolded))

    def forward(unfolded, w1, w2, rows, seg=None):
        seg = seg_of(unfolded) if seg is None else seg
        out, marks, final = _checkpointed_forward(fold(*unfolded), w1, w2, rows, **kw, seg=seg)
        if with_start:
            start = observe(w1, w2, quantities, depth)
            out = tuple(jnp.concatenate([f[None], o]) for f, o in zip(start, out))
        return out, marks, final

    f = jax.custom_vjp(primal)

    def fwd(*args):
        vals = [None if a is None else a.value for a in args]
        pert = [a is not None and a.perturbed for a in args]
        flags = tuple(jnp.zeros((), jnp.int8) if p else None for p in pert[:4])  # which need a cotangent
        if pkw is not None:
            return primal(*vals), (vals, None, None, flags, None)
        tangents = [i for i in range(6) if pert[i]]
        if all(x.ndim == 1 for x in vals[:4]) and len(tangents) <= _MAX_TANGENTS:
            # constants and few perturbed inputs: their tangents ride along the forward pass (one more
            # fused loop each); the backward pass only contracts them with the cotangents
            run = functools.partial(_packed_run, **kw, with_start=with_start)
            jac = [None] * 6
            out = None
            for i in tangents:
                def one(x, i=i):
                    return run(*vals[:i], x, *vals[i + 1:6])
                out, jac[i] = jax.jvp(one, (vals[i],), (jnp.ones_like(vals[i]),))
            return (out if out is not None else run(*vals[:6])), (vals, None, None, flags, tuple(jac))
        bounds = vals[6]
        rows = None if bounds is None else _step_rows(bounds, n_steps)
        out, marks, final = forward(vals[:4], vals[4], vals[5], rows)
        return out, (vals, marks, final, flags, None)

    def bwd(res, cots):
        vals, marks, final, flags, jac = res
        unfolded, (w1, w2, bounds) = tuple(vals[:4]), vals[4:]
        cots = [None if isinstance(ct, jax.custom_derivatives.SymbolicZero) else (ct.T if batch_major else ct)
                for ct in cots]
        if jac is not None:  # each output element depends on its own direction's inputs only
            grads = [jnp.zeros_like(x) for x in vals[:6]]
            for i, col in enumerate(jac):
                if col is not None:
                    grads[i] = sum(jnp.sum(ct * d, axis=0) for ct, d in zip(cots, col) if ct is not None)
            return (*grads, None if bounds is None else jnp.zeros_like(bounds))
        rows = None if bounds is None else _step_rows(bounds, n_steps)
        if marks is None:
            _, marks, final = forward(unfolded, w1, w2, rows)
        targets = tuple(i for i, x in enumerate(flags) if x is not None)
        seg = seg_of(unfolded)

        def reverse(marks, final, seg):
            (g1, g2), accs = _adjoint(fold(*unfolded), unfolded, targets, rows, marks, final, cots, **kw,
                                      with_start=with_start, seg=seg)
            full = [jnp.zeros_like(x) for x in unfolded]
            for t, acc in zip(targets, accs):
                full[t] = acc
            return (*full, g1, g2)

        grads = reverse(marks, final, seg)
        if rows is not None and seg > 2 and any(x.ndim == 2 for x in unfolded):
            # a block met three rows or more (pieces shorter than the block): blocks of two steps, which
            # meet two rows at most, instead (marks recomputed). The fast result outside the cond, and
            # this branch rather than JAX's reverse mode (large temporaries): the cond's cost when not
            # taken 0.2 ms against 2-4 ms (measured, mnist5k-sized, 2-core CPU)
            ok = _blocks_meet_two_pieces_at_most(rows, n_saves=n_saves, save_every=save_every, seg=seg)

            def pairs(_):
                _, marks2, final2 = forward(unfolded, w1, w2, rows, seg=2)
                return reverse(marks2, final2, 2)

            grads = lax.cond(ok, lambda g: g, pairs, grads)
        # the recursion is piecewise constant in the boundaries: their cotangent is zero
        return (*grads, None if bounds is None else jnp.zeros_like(bounds))

    f.defvjp(fwd, bwd, symbolic_zeros=True)
    return f
