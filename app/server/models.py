"""Which models a client may name, and what each name means on this machine.

Clients use the hosted services' ids (``runwayml/stable-diffusion-v1-5-inpainting``, Replicate's
``stable-diffusion-inpainting``, Segmind's ``sd1.5-inpainting``...). Those aliases resolve to the
server's inpainting model (``--model``, else the first installed SD 1.5 inpainting model, else the
classical method), and the img2img ids to an installed base model (else the same model). Besides
aliases a client may name a built-in method or an installed model by its listed id; never a file
path: a remote client must not make the server open arbitrary files as models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from app.core.params import CLASSICAL_MODELS, DEFAULT_MODEL, is_prompt_free
from app.core.records import GenerationRecord
from app.service import catalog
from app.server.errors import ApiError

INPAINT_ALIASES = ("runwayml/stable-diffusion-v1-5-inpainting", "stable-diffusion-v1-5/stable-diffusion-inpainting",
                   "stable-diffusion-inpainting", "sd1.5-inpainting", "stability-ai/stable-diffusion-inpainting",
                   "dall-e-2")
IMG2IMG_ALIASES = ("runwayml/stable-diffusion-v1-5-img2img", "runwayml/stable-diffusion-v1-5",
                   "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd1.5-img2img")


@dataclass(frozen=True)
class ServedModel:
    id: str  # what clients send
    ref: str  # GenerationParams.model
    mode: str | None = None  # "img2img" for the img2img aliases; None = the route decides


class ModelTable:
    def __init__(self, default_ref: str | None):
        found = [m for m in catalog.discover_models() if m.usable]
        diffusion = [m for m in found if not is_prompt_free(m.ref)]
        if default_ref is None:
            inpainting = [m for m in diffusion if m.inpainting]
            default_ref = inpainting[0].ref if inpainting else DEFAULT_MODEL
        base = [m for m in diffusion if m.inpainting is False]
        img2img_ref = base[0].ref if base else default_ref
        self.default = ServedModel(public_id(default_ref), default_ref)
        table = {a: ServedModel(a, default_ref) for a in INPAINT_ALIASES}
        table |= {a: ServedModel(a, img2img_ref, "img2img") for a in IMG2IMG_ALIASES}
        table |= {r: ServedModel(r, r) for r in CLASSICAL_MODELS}
        for m in diffusion:
            table.setdefault(public_id(m.ref), ServedModel(public_id(m.ref), m.ref))
        table.setdefault(self.default.id, self.default)
        self.table = table

    def resolve(self, requested: object, field: str = "model") -> ServedModel:
        """The model a request names (None or "" = the default), or 404 naming the field."""
        if requested in (None, ""):
            return self.default
        if isinstance(requested, str) and requested in self.table:
            return self.table[requested]
        raise ApiError(404, f"{field} = {requested!r} is not a model this server has; GET /v1/models lists them",
                       field, requested, "one of " + ", ".join(sorted(self.table)))

    def ids(self) -> list[str]:
        return sorted(self.table)


def public_record(record: GenerationRecord) -> GenerationRecord:
    """The record as clients may see it (output PNG metadata, A1111 infotexts): the model by its
    listed id, never a folder of this machine. The stored job record keeps the real reference."""
    model = public_id(record.params.model)
    return record if model == record.params.model else dataclasses.replace(record, params=record.params.replace(model=model))


def public_id(ref: str) -> str:
    """A folder or file is listed by its name (no local paths leak); builtins and repo ids as is."""
    path = Path(ref)
    return path.stem if path.is_absolute() or path.exists() else ref
