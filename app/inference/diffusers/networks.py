"""LoRAs and textual-inversion embeddings named in a prompt, applied to a loaded pipeline.

LoRAs go through diffusers' peft integration: each file is loaded once as a named adapter
(``load_lora_weights(..., adapter_name=…)``, which also converts kohya/A1111 key names), and a run
only activates the adapters its ``<lora:name:weight>`` tags ask for, with those weights
(``set_adapters``). A run without tags disables LoRA: peft layers then return their base layer's
output untouched, so the base model's pixels come back bit-exactly, and nothing is reloaded.
Adapters unused for a while are deleted (at most `KEEP_ADAPTERS` stay loaded).

An embedding is loaded the first time its file name appears as a word in a prompt
(``load_textual_inversion`` with the file stem as token). ``.pt``/``.bin`` files are pickles:
they are read only with ``torch.load(weights_only=True)``, which refuses code.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch

from app.core.prompt_syntax import extract_loras
from app.inference.diffusers.network_files import FAMILY_NAMES, CONTEXT_DIMS, embeddings_in, find_lora
from app.inference.errors import ModelLoadError, UnsupportedModelError

KEEP_ADAPTERS = 8


def adapter_name(name: str) -> str:
    """peft adapter names become module keys: no dots or other punctuation."""
    return "lora_" + re.sub(r"\W", "_", name)


def _check_width(what: str, dim: int | None, model_dim: int) -> None:
    if dim is not None and dim != model_dim:
        family = FAMILY_NAMES.get(CONTEXT_DIMS.get(dim, ""), f"a {dim}-wide text encoder")
        raise UnsupportedModelError(f"{what} was made for {family}, not for this model ({model_dim}-wide text): "
                                    "use one made for SD 1.x")


class ExtraNetworks:
    """The LoRA adapters and embeddings of one pipeline (shared by its from_pipe siblings)."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.adapters: OrderedDict[str, str] = OrderedDict()  # adapter name -> file, least recently used first
        self.embeddings: set[str] = set()
        self.active: dict[str, float] = {}

    @property
    def context_dim(self) -> int:
        return self.pipe.unet.config.cross_attention_dim

    # -- LoRA ----------------------------------------------------------------------------------
    def apply_loras(self, prompt: str) -> dict[str, float]:
        """Activate exactly the LoRAs tagged in ``prompt`` (adapter name → weight); a name given
        twice keeps its last weight. Raises `ModelLoadError` naming a missing or foreign LoRA."""
        _, tags = extract_loras(prompt)
        wanted: dict[str, float] = {}
        for tag in tags:
            wanted[self._ensure_loaded(tag.name)] = tag.weight
        # Set every run, even when unchanged: loading an adapter can activate it, and a run that
        # failed half-way through its tags must not leave one on.
        if wanted:
            self.pipe.enable_lora()
            self.pipe.set_adapters(list(wanted), list(wanted.values()))
        elif self.adapters:
            self.pipe.disable_lora()
        self.active = wanted
        self._evict(keep=set(wanted))
        return wanted

    def _ensure_loaded(self, name: str) -> str:
        info = find_lora(name)
        if info.note:
            raise UnsupportedModelError(f"LoRA '{name}' ({info.path.name}): {info.note}")
        _check_width(f"LoRA '{name}'", info.context_dim, self.context_dim)
        adapter = adapter_name(name)
        if self.adapters.get(adapter) == str(info.path):
            self.adapters.move_to_end(adapter)
            return adapter
        if adapter in self.adapters:  # same name, another file: replace it
            self.pipe.delete_adapters([adapter])
            del self.adapters[adapter]
        self._unfuse_qkv()
        try:
            self.pipe.load_lora_weights(str(info.path), adapter_name=adapter)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"LoRA '{name}' ({info.path.name}) could not be applied to this model: "
                                 f"{str(exc).splitlines()[0][:200]}") from exc
        self.adapters[adapter] = str(info.path)
        return adapter

    def _unfuse_qkv(self) -> None:
        """The CUDA fast path fuses to_q/to_k/to_v into one matmul, which would bypass the LoRA
        layers on them: go back to the separate projections once a LoRA is used."""
        unet = self.pipe.unet
        if getattr(unet, "original_attn_processors", None) is not None:
            unet.unfuse_qkv_projections()

    def _evict(self, keep: set[str]) -> None:
        idle = [a for a in self.adapters if a not in keep]
        for adapter in idle[: max(0, len(self.adapters) - KEEP_ADAPTERS)]:
            self.pipe.delete_adapters([adapter])
            del self.adapters[adapter]

    def unload_loras(self) -> None:
        """Remove every adapter (the peft layers too): the model is as loaded."""
        if self.adapters:
            self.pipe.unload_lora_weights()
        self.adapters.clear()
        self.active = {}

    # -- embeddings ------------------------------------------------------------------------------
    def load_embeddings_for(self, *texts: str) -> list[str]:
        """Load every embedding whose name appears as a word in ``texts``; return the names used."""
        used = []
        for info in embeddings_in(*texts):
            used.append(info.name)
            if info.name in self.embeddings:
                continue
            if info.note:
                raise UnsupportedModelError(f"embedding '{info.name}' ({info.path.name}): {info.note}")
            vectors = read_embedding(info.path)
            _check_width(f"embedding '{info.name}'", vectors.shape[-1], self.pipe.text_encoder.config.hidden_size)
            self.pipe.load_textual_inversion({info.name: vectors}, token=info.name)
            self.embeddings.add(info.name)
        return used


def read_embedding(path) -> torch.Tensor:
    """The (n_vectors, dim) tensor of an embedding file in A1111 (string_to_param / emb_params)
    or diffusers ({token: tensor}) layout. Pickles are read with ``weights_only=True``."""
    try:
        if str(path).lower().endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file or a pickle holding code: one clear line either way
        raise ModelLoadError(f"{path}: not a readable embedding ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from exc
    if isinstance(state, dict) and "string_to_param" in state:
        state = state["string_to_param"]
    if isinstance(state, dict) and "emb_params" in state:
        state = {"emb_params": state["emb_params"]}
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)] if isinstance(state, dict) else [state]
    if len(tensors) != 1 or not isinstance(tensors[0], torch.Tensor):
        raise ModelLoadError(f"{path}: not a textual-inversion embedding (expected one tensor of vectors)")
    vectors = tensors[0].detach().float()
    return vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
