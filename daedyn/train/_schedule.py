"""Training under eps, gamma and alpha schedules (private): the epoch's values and the driver's checks.

A :class:`~daedyn.train.Hyper` field may be a :class:`daedyn.schedules.Schedule`, and so may a
parameter of its corruption (``masking(p=schedule)``); the training loop then evaluates them once
per epoch (epoch k, the step from k to k + 1, uses ``eps(k)`` and ``corruption.at(k)``: the same
convention as :func:`daedyn.dynamics.scalar_gd`), so a marginalised linear run from the decoupling
start follows the scheduled scalar recursion exactly. Runs without a schedule are untouched (the
check is on the pytree structure, static under jit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from daedyn import noise as noise_lib
from daedyn._checks import check_range, concrete
from daedyn._corruption import GaussianCovariance
from daedyn.schedules import Function, PiecewiseConstant, is_schedule, over
from daedyn.train import _corruption as corruption_lib

__all__ = ["flatten_corruption", "hyper_at_epoch", "driver_eps", "driver_rates", "stability_eps",
           "batch_shape", "flatten",
           "flatten_any", "broadcast_runs", "in_units", "times", "over"]


def hyper_at_epoch(hyper, epoch):
    """``hyper`` with every schedule field replaced by its value at ``epoch``, and a scheduled
    corruption by the one in force then (``corruption.at(epoch)``); unchanged if none."""
    corruption = getattr(hyper, "corruption", None)
    scheduled = getattr(corruption, "scheduled", False)
    if not (scheduled or any(is_schedule(v) for v in hyper)):
        return hyper
    t = jnp.asarray(epoch).astype(jnp.result_type(float))
    changes = {k: v(t) for k, v in hyper._asdict().items() if is_schedule(v)}
    if scheduled:
        changes["corruption"] = corruption.at(t)
    return hyper._replace(**changes)


def driver_eps(eps, noise, *, batched: bool, checkpoint, dtype=None):
    """Validate ``train(eps=schedule)``; returns the noise model that carries the kind (Gaussian),
    or, with a corruption (masking, ...), the corruption followed by Gaussian noise of level eps
    (:class:`daedyn.train._corruption.WithAdditive`: marginalised, C + eps I)."""
    if not is_schedule(eps):
        raise ValueError(f"eps must be a daedyn.schedules schedule (give a constant noise level as noise=); "
                         f"got {type(eps).__name__}")
    if noise is not None and not corruption_lib.is_corruption(noise):
        raise ValueError("noise must be None when eps is a schedule (the schedule gives eps = N s^2 at every "
                         "epoch; sampled noise is Gaussian), or a corruption (masking, salt_and_pepper, "
                         "gaussian_covariance) to which the Gaussian noise of level eps is added")
    if batched and not isinstance(eps, PiecewiseConstant):
        raise ValueError(f"eps must be a piecewise-constant schedule in train_batch() (its values "
                         f"(K + 1, *S) give one schedule per run); got a {type(eps).__name__} schedule")
    if checkpoint is not None:
        raise ValueError("checkpoint is not supported with an eps schedule")
    values = concrete(eps.values) if isinstance(eps, PiecewiseConstant) else None
    if values is not None:
        check_range("eps schedule values", values, 0.0)
    gaussian = noise_lib.gaussian(0.0)
    return gaussian if noise is None else corruption_lib.WithAdditive(noise, gaussian)


def driver_rates(alpha, gamma, *, batched: bool, checkpoint, optimizer, epochs=None):
    """Validate learning-rate and weight-decay schedules of ``train``; returns constant stand-ins
    (the largest value each takes: the piece values, a ramp's ends, or a function's values on the
    run's ``epochs``, the times its steps use) for the range and stability checks, or the values
    themselves."""
    out = []
    for name, v in (("alpha", alpha), ("gamma", gamma)):
        if not is_schedule(v):
            out.append(v)
            continue
        if batched and not isinstance(v, PiecewiseConstant):
            raise ValueError(f"{name} must be a piecewise-constant schedule in train_batch() (its values "
                             f"(K + 1, *S) give one schedule per run); got a {type(v).__name__} schedule")
        if checkpoint is not None:
            raise ValueError(f"checkpoint is not supported with a {name} schedule")
        if name == "alpha" and optimizer is not None:
            raise ValueError("an alpha schedule is the learning rate of gradient descent: drop optimizer= "
                             "(or give the optimizer its own optax schedule)")
        values = _values(name, v, epochs)
        if values is None:
            raise ValueError(f"{name} schedule values must be concrete (not traced) in train()")
        check_range(f"{name} schedule values", values, 0.0, lo_open=name == "alpha")
        out.append(np.max(np.asarray(values), axis=0))  # (*S): one stand-in per run in train_batch
    return tuple(out)


def _values(name, v, epochs):
    """Concrete values a schedule takes in the run (None when traced)."""
    from daedyn.schedules import schedule_values

    ts = np.arange(max(int(epochs), 1)) if epochs is not None else np.zeros(1)
    return schedule_values(name, v, ts)


def times(t, inner, c):
    """``inner(t) * c``: a schedule in other units (the ``fn`` of a :class:`~daedyn.schedules.Function`)."""
    return inner(t) * c




def in_units(v, fn, *, c=None, inverse=False):
    """``fn`` applied to a value, or to every piece of a piecewise-constant schedule (a schedule back);
    any other schedule becomes the schedule ``v(t) * c`` (``c / v(t)`` with ``inverse``), which is
    what ``fn`` does to a value."""
    if isinstance(v, PiecewiseConstant):
        return PiecewiseConstant(v.boundaries, fn(v.values))
    if is_schedule(v):
        return Function((v, c), over if inverse else times)
    return fn(v)


def stability_eps(eps):
    """A constant stand-in for the stability check: the largest piece value (the Hessian grows with
    eps), or 0 for schedules whose values are not known in advance."""
    if not is_schedule(eps):
        return eps
    if isinstance(eps, PiecewiseConstant) and concrete(eps.values) is not None:
        return np.max(np.asarray(eps.values), axis=0)
    return 0.0


def cast(eps, dtype):
    """A schedule's leaves in the run's dtype."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), eps)


def batch_shape(eps) -> tuple[int, ...]:
    """The batch shape ``eps`` contributes to ``train_batch``: a schedule's value shape, else its own."""
    return tuple(eps.shape) if is_schedule(eps) else np.shape(eps)


def flatten(eps, shape, size):
    """A piecewise-constant schedule with values (K + 1, *S) as ``size`` runs' schedules: leaves with a
    leading run axis (boundaries (size, K), values (size, K + 1)), which the vmapped loop slices."""
    v = jnp.moveaxis(eps.values, 0, -1)  # (*S, K + 1)
    v = jnp.broadcast_to(v, tuple(shape) + v.shape[-1:]).reshape(size, v.shape[-1])
    b = jnp.broadcast_to(eps.boundaries, (size,) + eps.boundaries.shape)
    return PiecewiseConstant(b, v)


def flatten_any(v, shape, size):
    """A run's hyperparameter for the vmapped loop: a schedule through :func:`flatten`, an array
    broadcast to the batch ``shape`` and flattened to (size,)."""
    if is_schedule(v):
        return flatten(v, shape, size)
    return jnp.broadcast_to(v, shape).reshape(size)


def broadcast_runs(v, shape):
    """A ``train_batch`` result field with the batch ``shape``: an array broadcast to it, a
    piecewise-constant schedule with its values broadcast to (K + 1, *shape) (run b's schedule is
    ``values[:, b]``)."""
    if isinstance(v, PiecewiseConstant):
        return PiecewiseConstant(v.boundaries, jnp.broadcast_to(v.values, v.values.shape[:1] + tuple(shape)))
    return jnp.broadcast_to(v, shape)


def flatten_corruption(noise, shape: tuple[int, ...], size: int, dtype):
    """The corruption with its leaves broadcast to ``shape`` and flattened to ``size`` runs (a
    covariance, or its schedule, is shared: every leaf gets a leading run axis)."""
    if isinstance(noise, GaussianCovariance):
        return jax.tree_util.tree_map(
            lambda a: jnp.broadcast_to(jnp.asarray(a, dtype), (size, *jnp.shape(a))), noise)
    if is_schedule(noise.p):  # piecewise constant (batch_shape): one schedule per run
        p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), noise.p)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(noise, is_leaf=is_schedule),
                                            [flatten(p, shape, size)])
    return jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(jnp.asarray(a, dtype), shape).reshape(size), noise)
