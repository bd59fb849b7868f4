"""Every schedule type's sigmas against k-diffusion's / A1111's formulas, written out here in plain
Python (k_diffusion/sampling.py get_sigmas_*, k_diffusion/external.py DiscreteSchedule,
A1111 modules/sd_schedulers.py), for the SD 1.5 model, to 1e-6."""

import math

import numpy as np
import pytest

from app.core import sigma_schedules
from app.core.sigma_schedules import SCHEDULE_TYPES, schedule_sigmas, sd15_sigmas

# -- the model: SD 1.5's scaled_linear betas -------------------------------------------------------------------------
_B0, _B1 = math.sqrt(0.00085), math.sqrt(0.012)
_ALPHA_BAR, _prod = [], 1.0
for _i in range(1000):
    _prod *= 1 - (_B0 + _i * (_B1 - _B0) / 999) ** 2
    _ALPHA_BAR.append(_prod)
MODEL = [math.sqrt((1 - a) / a) for a in _ALPHA_BAR]  # t = 0 … 999, ascending
SMIN, SMAX = MODEL[0], MODEL[-1]


def linspace(a, b, n):
    return [a + (b - a) * i / (n - 1) for i in range(n)] if n > 1 else [a]


def t_to_sigma(t):
    lo, hi = math.floor(t), math.ceil(t)
    w = t - lo
    return math.exp((1 - w) * math.log(MODEL[lo]) + w * math.log(MODEL[hi]))


# -- the formulas ----------------------------------------------------------------------------------------------------
def k_uniform(n):  # DiscreteSchedule.get_sigmas
    return [t_to_sigma(t) for t in linspace(999, 0, n)] + [0.0]


def k_karras(n, rho=7.0):
    lo, hi = SMIN ** (1 / rho), SMAX ** (1 / rho)
    return [(hi + r * (lo - hi)) ** rho for r in linspace(0, 1, n)] + [0.0]


def k_exponential(n):
    return [math.exp(x) for x in linspace(math.log(SMAX), math.log(SMIN), n)] + [0.0]


def k_polyexponential(n, rho=1.0):
    return [math.exp(r**rho * (math.log(SMAX) - math.log(SMIN)) + math.log(SMIN)) for r in linspace(1, 0, n)] + [0.0]


def a_sgm_uniform(n):  # normal_scheduler(sgm=True): sigma_to_t(sigma_max) = 999, sigma_to_t(sigma_min) = 0
    return [t_to_sigma(t) for t in linspace(999, 0, n + 1)[:-1]] + [0.0]


def a_normal(n):
    return [t_to_sigma(t) for t in linspace(999, 0, n)] + [0.0]


def a_kl_optimal(n):
    return [math.tan(i / n * math.atan(SMIN) + (1 - i / n) * math.atan(SMAX)) for i in range(n + 1)]


AYS = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]


def a_align_your_steps(n):
    if n == len(AYS):
        return AYS + [0.0]
    ys = [math.log(v) for v in reversed(AYS)]  # log-linear interpolation over 0…1
    out = []
    for x in linspace(0, 1, n):
        pos = x * (len(ys) - 1)
        k = min(int(pos), len(ys) - 2)
        out.append(math.exp(ys[k] + (pos - k) * (ys[k + 1] - ys[k])))
    return out[::-1] + [0.0]


def a_simple(n):
    return [MODEL[-(1 + int(x * 1000 / n))] for x in range(n)] + [0.0]


def a_ddim(n):
    out, x = [], 1
    while x < 1000:
        out.append(MODEL[x])
        x += max(1000 // n, 1)
    return out[::-1] + [0.0]


def a_beta(n, alpha=0.6, beta=0.6):
    from scipy import stats

    return [SMIN + stats.beta.ppf(1 - x, alpha, beta) * (SMAX - SMIN) for x in linspace(0, 1, n)] + [0.0]


FORMULAS = {"Uniform": k_uniform, "Karras": k_karras, "Exponential": k_exponential,
            "Polyexponential": k_polyexponential, "SGM Uniform": a_sgm_uniform, "KL Optimal": a_kl_optimal,
            "Align Your Steps": a_align_your_steps, "Simple": a_simple, "Normal": a_normal, "DDIM": a_ddim,
            "Beta": a_beta}


def test_model_sigmas_are_sd15s():
    assert np.allclose(sd15_sigmas(), MODEL, rtol=1e-9)
    assert abs(SMIN - 0.0292) < 1e-4 and abs(SMAX - 14.6146) < 1e-4


def test_every_schedule_type_has_a_formula():
    assert set(SCHEDULE_TYPES) == {"Automatic", *FORMULAS}


@pytest.mark.parametrize("steps", [1, 2, 7, 11, 20, 33])
@pytest.mark.parametrize("schedule", list(FORMULAS))
def test_sigmas_match_the_formula(schedule, steps):
    ours = schedule_sigmas(schedule, steps, sd15_sigmas())
    expected = FORMULAS[schedule](steps)
    assert len(ours) == len(expected)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.diff(ours) <= 0)  # descending


def test_sigma_to_t_inverts_t_to_sigma():
    s = sd15_sigmas()
    ts = np.array([0.0, 0.25, 1.5, 500.0, 998.75, 999.0])
    np.testing.assert_allclose(sigma_schedules.sigma_to_t(sigma_schedules.t_to_sigma(ts, s), s), ts, atol=1e-6)


def test_automatic_is_the_samplers_own_schedule():
    """Automatic computes nothing here: diffusers' Euler keeps its "leading" timesteps (SD 1.5's
    steps_offset 1), i.e. σ at t = 1, 1 + 1000//n, …, as A1111's DDIM schedule picks them."""
    from app.inference.diffusers.schedulers import make_scheduler

    config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1,
              "timestep_spacing": "leading", "num_train_timesteps": 1000}
    sched = make_scheduler("Euler", config)
    sched.set_timesteps(20)
    np.testing.assert_allclose(sched.sigmas.numpy(), a_ddim(20), rtol=1e-5)  # diffusers keeps ᾱ in float32
    with pytest.raises(KeyError):
        schedule_sigmas("Automatic", 20, sd15_sigmas())
