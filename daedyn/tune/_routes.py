"""Routes 2 (integrated dynamics) and 3 (actual training) of the held-out objective."""

from __future__ import annotations


def dynamics_mapping(data, h, *, hidden, epochs, init, checkpoint_every, key):
    raise NotImplementedError("route 'dynamics' waits for daedyn.dynamics")


def train_objective(data, h, *, hidden, epochs, checkpoint_every, options):
    raise NotImplementedError("route 'train' waits for daedyn.train")
