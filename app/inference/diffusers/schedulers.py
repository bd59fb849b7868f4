"""Builds the diffusers scheduler for a sampler × schedule type pair (`app.core.schedulers`).

"Automatic" is the diffusers class as configured by the model. Any other schedule type replaces
the class's sigmas with ours (`app.core.sigma_schedules`, computed as A1111 computes them):

* the k-diffusion-style classes (Euler, LMS, Heun, DPM2, DPM++, UniPC) already turn Karras sigmas
  into their own layout (Heun's and DPM2's doubled steps, DPM++'s rounded timesteps): a subclass
  routes our sigmas through that path, so each class steps them as it steps Karras;
* Euler ancestral has no such path: its subclass sets sigmas and timesteps after its own setup;
* LCM and TCD take timesteps: ours are the nearest training timesteps of the sigmas;
* DDIM with η=0 is Euler on the same sigmas (as ComfyUI runs "ddim"), so it runs as that.

The last sigma is the class's own final one: zero, except KL Optimal, which ends at σ_min as in
A1111 where the class can (Euler, DPM++ and so DDIM); elsewhere it ends at zero.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from app.core import sigma_schedules
from app.core.schedulers import scheduler_spec
from app.core.sigma_schedules import AUTOMATIC

_EULER_FOR = {"DDIMScheduler": "EulerDiscreteScheduler"}
#: Classes whose ``final_sigmas_type="sigma_min"`` is the model's σ_min (UniPC's repeats its last sigma).
_MODEL_SIGMA_MIN_FINAL = ("EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler")
_SIGMA_FLAGS = ("use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas")


class _GivenSchedule:
    """Mixin: the schedule type to run, a class attribute (some classes set timesteps in __init__)."""

    schedule: str = AUTOMATIC

    def schedule_sigmas(self, steps: int) -> np.ndarray:
        """Our sigmas for ``steps`` steps, without the final one the class appends itself."""
        sigmas = sigma_schedules.model_sigmas(self.alphas_cumprod.cpu().numpy())
        return sigma_schedules.schedule_sigmas(self.schedule, steps, sigmas)[:-1]

    def schedule_timesteps(self, steps: int) -> np.ndarray:
        sigmas = sigma_schedules.model_sigmas(self.alphas_cumprod.cpu().numpy())
        return sigma_schedules.sigma_to_t(self.schedule_sigmas(steps), sigmas)


class _ViaKarras(_GivenSchedule):
    """For classes with a Karras path: that path's sigmas are ours."""

    def _convert_to_karras(self, in_sigmas, num_inference_steps=None):
        return self.schedule_sigmas(num_inference_steps or self.num_inference_steps)

    def set_timesteps(self, *args, **kwargs):
        super().set_timesteps(*args, **kwargs)
        if hasattr(self, "order_list"):  # DPM++ SDE plans its orders per step: A1111's DDIM may give one more
            self.order_list = self.get_order_list(len(self.timesteps))


class _SetAfter(_GivenSchedule):
    """For Euler ancestral: its own setup, then our sigmas and their timesteps."""

    def set_timesteps(self, num_inference_steps: int, device=None):
        super().set_timesteps(num_inference_steps, device)
        sigmas = self.schedule_sigmas(num_inference_steps)
        self.timesteps = torch.from_numpy(self.schedule_timesteps(num_inference_steps).astype(np.float32)).to(device)
        self.sigmas = torch.from_numpy(np.append(sigmas, 0.0).astype(np.float32))
        self.num_inference_steps = len(sigmas)


class _GivenTimesteps(_GivenSchedule):
    """For LCM and TCD: the distinct training timesteps nearest our sigmas, passed as its custom timesteps."""

    def set_timesteps(self, num_inference_steps=None, device=None, original_inference_steps=None, timesteps=None,
                      strength: float = 1.0):
        if timesteps is None:
            ts = np.round(self.schedule_timesteps(num_inference_steps)).astype(int)
            timesteps = [int(t) for t in dict.fromkeys(ts.tolist())]  # descending, no repeats
            num_inference_steps = None
        super().set_timesteps(num_inference_steps, device, original_inference_steps, timesteps, strength)


def _subclass(cls: type, schedule: str) -> tuple[type, dict]:
    """Our subclass of ``cls`` running ``schedule`` and the config flags that send its sigmas through it."""
    options = inspect.signature(cls.__init__).parameters
    if hasattr(cls, "_convert_to_karras") and "use_karras_sigmas" in options:
        flags = {"use_karras_sigmas": True} | {f: False for f in _SIGMA_FLAGS if f in options}
        return type(f"Scheduled{cls.__name__}", (_ViaKarras, cls), {"schedule": schedule}), flags
    if cls.__name__ in ("LCMScheduler", "TCDScheduler"):
        return type(f"Scheduled{cls.__name__}", (_GivenTimesteps, cls), {"schedule": schedule}), {}
    if cls.__name__ == "EulerAncestralDiscreteScheduler":
        return type("ScheduledEulerAncestralDiscreteScheduler", (_SetAfter, cls), {"schedule": schedule}), {}
    raise ValueError(f"{cls.__name__} takes no given sigmas or timesteps")


def make_scheduler(name: str, base_config):
    """A fresh scheduler for ``name`` (any accepted name) built from the loaded model's scheduler
    config (its beta schedule and training timesteps), as ``Cls.from_config(base_config, **kwargs)``."""
    import diffusers

    cls_name, kwargs, schedule = scheduler_spec(name)
    if schedule == AUTOMATIC:
        return getattr(diffusers, cls_name).from_config(base_config, **kwargs)
    base = _EULER_FOR.get(cls_name, cls_name)
    cls, flags = _subclass(getattr(diffusers, base), schedule)
    if schedule == "KL Optimal" and base in _MODEL_SIGMA_MIN_FINAL:
        flags["final_sigmas_type"] = "sigma_min"  # A1111's KL Optimal ends at σ_min, not at zero
    return cls.from_config(base_config, **kwargs, **flags)
