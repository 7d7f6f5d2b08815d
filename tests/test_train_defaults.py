"""train.train's record spacing follows epochs as `daedyn train`'s does (issue 28: a 10-epoch run
failed with 'epochs (10) must be a multiple of save_every (100)')."""

import jax.random as jr
import numpy as np
import pytest

from daedyn import train


@pytest.mark.parametrize("epochs, every", [(10, 10), (250, 50), (1000, 100), (7, 7), (0, 1)])
def test_default_save_every_follows_epochs(epochs, every):
    # the CLI's rule, restated: the largest divisor of epochs up to min(100, epochs)
    expect = max(k for k in range(1, min(100, epochs) + 1) if epochs % k == 0) if epochs else 1
    assert every == expect
    assert train.TrainConfig(hidden=2, epochs=epochs).save_every == every
    assert train.TrainConfig(hidden=2, epochs=epochs, save_every=1).save_every == 1  # given: kept


def test_a_short_run_needs_no_save_every():
    x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    r = train.train(x, hidden=2, key=jr.key(0), alpha=0.1, epochs=10)
    assert np.asarray(r.t).tolist() == [0, 10]
