"""Noise schedules (A1111's "Schedule type"): the sigmas a sampler steps through, computed as
k-diffusion and AUTOMATIC1111 (modules/sd_schedulers.py) compute them for an SD 1.x model.

Plain numpy on the model's discrete sigmas (σ_t = √((1−ᾱ_t)/ᾱ_t), t = 0…999), so the core can
list and check them without torch; `app.inference.diffusers.schedulers` hands them to diffusers.
"Automatic" is not computed here: it is each diffusers sampler's own default schedule.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

AUTOMATIC = "Automatic"

#: A1111's Align Your Steps table for SD 1.5 (NVIDIA's 10-step schedule, 11 sigmas).
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
KARRAS_RHO = 7.0
POLYEXPONENTIAL_RHO = 1.0
BETA_ALPHA = BETA_BETA = 0.6  # A1111's defaults (options beta_dist_alpha / beta_dist_beta)


def model_sigmas(alphas_cumprod: np.ndarray) -> np.ndarray:
    """The model's discrete sigmas, ascending with t."""
    ac = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.sqrt((1 - ac) / ac)


def sd15_sigmas(beta_start: float = 0.00085, beta_end: float = 0.012, steps: int = 1000) -> np.ndarray:
    """The sigmas of SD 1.x's "scaled_linear" beta schedule."""
    betas = np.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=np.float64) ** 2
    return model_sigmas(np.cumprod(1.0 - betas))


def t_to_sigma(t: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """k-diffusion's DiscreteSchedule.t_to_sigma: log-linear interpolation between discrete sigmas."""
    t = np.asarray(t, dtype=np.float64)
    log_sigmas = np.log(sigmas)
    low, high = np.floor(t).astype(int), np.ceil(t).astype(int)
    w = t - low
    return np.exp((1 - w) * log_sigmas[low] + w * log_sigmas[high])


def sigma_to_t(sigma: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """k-diffusion's DiscreteSchedule.sigma_to_t: the (fractional) timestep of each sigma."""
    log_sigmas = np.log(sigmas)
    log_sigma = np.log(np.atleast_1d(np.asarray(sigma, dtype=np.float64)))
    dists = log_sigma[None, :] - log_sigmas[:, None]
    low = np.minimum(np.cumsum(dists >= 0, axis=0).argmax(axis=0), len(log_sigmas) - 2)
    high = low + 1
    w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[high]), 0, 1)
    return (1 - w) * low + w * high


def _zero(sigmas) -> np.ndarray:
    return np.append(np.asarray(sigmas, dtype=np.float64), 0.0)


def uniform(n: int, s: np.ndarray) -> np.ndarray:
    """k-diffusion's get_sigmas(n): timesteps evenly spaced from the last to the first."""
    return _zero(t_to_sigma(np.linspace(len(s) - 1, 0, n), s))


def karras(n: int, s: np.ndarray) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    lo, hi = s[0] ** (1 / KARRAS_RHO), s[-1] ** (1 / KARRAS_RHO)
    return _zero((hi + ramp * (lo - hi)) ** KARRAS_RHO)


def exponential(n: int, s: np.ndarray) -> np.ndarray:
    return _zero(np.exp(np.linspace(np.log(s[-1]), np.log(s[0]), n)))


def polyexponential(n: int, s: np.ndarray) -> np.ndarray:
    ramp = np.linspace(1, 0, n) ** POLYEXPONENTIAL_RHO
    return _zero(np.exp(ramp * (np.log(s[-1]) - np.log(s[0])) + np.log(s[0])))


def _normal(n: int, s: np.ndarray, sgm: bool) -> np.ndarray:
    start, end = sigma_to_t(s[-1], s)[0], sigma_to_t(s[0], s)[0]
    ts = np.linspace(start, end, n + 1)[:-1] if sgm else np.linspace(start, end, n)
    return _zero(t_to_sigma(ts, s))


def normal(n: int, s: np.ndarray) -> np.ndarray:
    return _normal(n, s, sgm=False)


def sgm_uniform(n: int, s: np.ndarray) -> np.ndarray:
    return _normal(n, s, sgm=True)


def kl_optimal(n: int, s: np.ndarray) -> np.ndarray:
    """A1111's KL optimal: n+1 sigmas ending at sigma_min, not at zero."""
    a_min, a_max = np.arctan(s[0]), np.arctan(s[-1])
    i = np.arange(n + 1) / n
    return np.tan(i * a_min + (1.0 - i) * a_max)


def align_your_steps(n: int, s: np.ndarray) -> np.ndarray:
    """A1111's AYS for SD 1.5: the table, log-linearly interpolated to n sigmas unless n is 11."""
    if n == len(AYS_SD15):
        return _zero(AYS_SD15)
    xs = np.linspace(0, 1, len(AYS_SD15))
    ys = np.log(AYS_SD15[::-1])
    return _zero(np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1])


def simple(n: int, s: np.ndarray) -> np.ndarray:
    ss = len(s) / n
    return _zero([s[-(1 + int(x * ss))] for x in range(n)])


def ddim(n: int, s: np.ndarray) -> np.ndarray:
    """Every (1000 // n)-th sigma from t=1 up, reversed; may give a step more than n."""
    return _zero(s[1 :: max(len(s) // n, 1)][::-1])


def beta(n: int, s: np.ndarray) -> np.ndarray:
    from scipy.special import betaincinv  # scipy.stats.beta.ppf, as A1111 calls it

    ts = betaincinv(BETA_ALPHA, BETA_BETA, 1 - np.linspace(0, 1, n))
    return _zero(s[0] + ts * (s[-1] - s[0]))


#: Schedule type (A1111's label) → function of (steps, model sigmas); Automatic is the sampler's own.
SCHEDULES: dict[str, Callable[[int, np.ndarray], np.ndarray]] = {
    "Uniform": uniform,
    "Karras": karras,
    "Exponential": exponential,
    "Polyexponential": polyexponential,
    "SGM Uniform": sgm_uniform,
    "KL Optimal": kl_optimal,
    "Align Your Steps": align_your_steps,
    "Simple": simple,
    "Normal": normal,
    "DDIM": ddim,
    "Beta": beta,
}

SCHEDULE_TYPES: tuple[str, ...] = (AUTOMATIC, *SCHEDULES)


def schedule_sigmas(schedule: str, steps: int, sigmas: np.ndarray) -> np.ndarray:
    """The sigmas of ``schedule`` for ``steps`` steps, descending, with the final sigma (0, or
    sigma_min for KL Optimal) appended, as A1111 passes them to its sampler."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    return SCHEDULES[schedule](steps, np.asarray(sigmas, dtype=np.float64))
