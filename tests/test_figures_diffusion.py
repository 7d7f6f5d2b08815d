"""figure_diffusion (beyond the paper): learning time vs variance, the generated spectrum, KL and tuning."""

import math

import numpy as np
import pytest

from daedyn import figures
from daedyn.figures._common import load_numbers


@pytest.fixture(scope="module")
def numbers(tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion")
    figures.FIGURES["diffusion"](quick=True, out_dir=out)
    assert (out / "figure_diffusion.png").stat().st_size > 1000
    return load_numbers(out, "figure_diffusion")


@pytest.mark.slow  # two training runs and a tuning: ~30 s on a 2-core CPU, more when it is loaded
def test_theory_line_is_the_logistic_learning_time(numbers):
    # without preconditioning A = lam + N E[s^2], B = lam (c_skip = 0, c_out = c_in = w = 1), and the
    # depth-2 balanced logistic u = B / (A + (B / w0 - A) exp(-2 B t / tau)) reaches 0.9 B / A at
    # t = tau / (2 B) ln((B / w0 - A) / (A / 9)): computed here by hand (EDM's LogNormal(-1.2, 1.2))
    n, alpha, w0 = numbers["n"], numbers["alpha"], numbers["settings"]["w0"]
    var = numbers["grid_variance"]
    lam = var * n
    a = lam + n * math.exp(2 * -1.2 + 2 * 1.2**2)
    t_exact = (n / alpha) / (2 * lam) * np.log((lam / w0 - a) / (a / 9.0))
    t_line = numbers["learning_time_theory_none"]
    # the line is the first time on a geometric grid of ratio 10^(7/600) ~ 1.027 at or after the exact one
    assert np.all(t_line >= t_exact * (1 - 1e-4))
    assert np.all(t_line <= t_exact * 1.03)
    # the 1/lambda law at large lam (the log only grows slowly): slope of log t vs log lam near -1
    slope = np.polyfit(np.log(var[-20:]), np.log(t_line[-20:]), 1)[0]
    assert -1.15 < slope < -0.9


@pytest.mark.slow
def test_trained_dots_follow_the_theory_and_edm_stops_below_sigma_data(numbers):
    var = numbers["lam"] / numbers["n"]
    save = numbers["settings"]["save_every"]
    for precond in ("edm", "none"):
        dots = numbers[f"learning_time_trained_{precond}"]
        theory = numbers[f"learning_time_theory_{precond}"]
        line = np.interp(np.log(var), np.log(numbers["grid_variance"]), theory)
        ok = np.isfinite(dots) & np.isfinite(line)
        assert ok.sum() >= 4
        # records every `save` epochs and sampled gradients (8 draws of N = 400): 15% or two records
        assert np.all(np.abs(dots[ok] - line[ok]) <= np.maximum(0.15 * line[ok], 2 * save)), (dots, line)
    # under EDM, B < 0 below sigma_data^2 = 0.25: those directions never learn from a positive start
    assert np.all(np.isnan(numbers["learning_time_trained_edm"][var < 0.24]))
    assert np.all(np.isfinite(numbers["learning_time_trained_none"]))


@pytest.mark.slow
def test_tuned_kl_is_below_the_default(numbers):
    assert numbers["kl_at_budget_tuned"] <= numbers["kl_at_budget_edm"]
    t, budget = numbers["t"], numbers["budget"]
    i = np.argmin(np.abs(t - budget))
    assert numbers["kl_tuned"][i] <= numbers["kl_edm"][i] + 1e-3  # the curves at T agree with the tuning
