"""Batches that are fast and still exact: N candidates in one batched UNet call, where item k
starts from exactly the inputs a single run with seed s+k starts from.

A plain batched diffusers call does not give that: its inpaint pipeline encodes the one input
image once, with the first generator, so every item's masked-image latents (and, below strength 1,
its image latents) come from generator 0. `per_seed_inputs` makes the pipeline prepare each
item on its own: ``prepare_latents`` and ``prepare_mask_latents`` run once per item with batch
size 1 and that item's generator, in the order a single run draws from it (latents first, then
masked-image latents), and the results are stacked. Each item's initial noise, image latents and
masked-image latents are then bit-identical to the single run's (tests/test_gpu_pace.py checks
it); what still differs is only how batched kernels round (measured in docs/PERFORMANCE_GPU.md).
"""

from __future__ import annotations

from contextlib import contextmanager


def _item(value, k: int, n: int):
    """Item ``k`` of a per-item batch tensor; anything shared by all items as it is."""
    import torch

    if isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[0] == n and n > 1:
        return value[k:k + 1]
    return value


def _first(timestep):
    """The batch's noise timestep (one per item, all equal) as a single run has it: shape (1,)."""
    return timestep if timestep is None or timestep.dim() == 0 else timestep[:1]


@contextmanager
def per_seed_inputs(pipe, generators: list):
    """Within the block, ``pipe`` prepares every batch item's starting latents and masked-image
    latents from that item's own generator, exactly as a batch-1 call with it would."""
    import torch

    n = len(generators)
    prepare_latents, prepare_mask_latents = pipe.prepare_latents, pipe.prepare_mask_latents

    def latents_per_seed(batch_size, num_channels, height, width, dtype, device, generator, latents=None,
                         image=None, timestep=None, **kw):
        if batch_size != n:
            return prepare_latents(batch_size, num_channels, height, width, dtype, device, generator, latents,
                                   image, timestep, **kw)
        parts = [prepare_latents(1, num_channels, height, width, dtype, device, generators[k],
                                 _item(latents, k, n), _item(image, k, n), _first(timestep), **kw) for k in range(n)]
        return tuple(torch.cat(column) for column in zip(*parts))

    def masks_per_seed(mask, masked_image, batch_size, height, width, dtype, device, generator, cfg):
        if batch_size != n:
            return prepare_mask_latents(mask, masked_image, batch_size, height, width, dtype, device, generator, cfg)
        parts = [prepare_mask_latents(_item(mask, k, n), _item(masked_image, k, n), 1, height, width, dtype, device,
                                      generators[k], False) for k in range(n)]
        masks, latents = (torch.cat(column) for column in zip(*parts))
        if cfg:  # the layout of the batched call: [items…, items…] for (uncond, text)
            masks, latents = torch.cat([masks] * 2), torch.cat([latents] * 2)
        return masks, latents

    pipe.prepare_latents, pipe.prepare_mask_latents = latents_per_seed, masks_per_seed
    try:
        yield
    finally:
        del pipe.prepare_latents, pipe.prepare_mask_latents  # back to the class's methods
