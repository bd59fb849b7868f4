"""ComfyUI: the ``prompt`` chunk (the API graph: node id → {class_type, inputs}) or, when only
the editor's ``workflow`` chunk is there, that graph rebuilt into the same form.

The sampler is the node with a seed and steps (KSampler, KSamplerAdvanced) or, for the custom
sampler nodes, the one whose links reach them (RandomNoise, BasicScheduler, KSamplerSelect,
CFGGuider). Prompts are the text-encode nodes its ``positive``/``negative`` links lead to,
through any conditioning nodes in between. Several samplers → no guess: a choice.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from app.core.sdmeta.found import Found, SamplerChoice
from app.core.sdmeta.sources import json_object

Graph = dict[str, dict[str, Any]]

_SAMPLER_TYPES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
_TEXT_KEYS = ("text", "text_g", "string", "value", "prompt")
_CONDITIONING_HINTS = ("conditioning", "positive", "negative", "guider", "clip")
_LATENT_HINTS = ("latent", "samples", "pixels", "image")
#: Widget order of the common nodes, to rebuild inputs from a ``workflow`` chunk.
_WIDGETS = {
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", None, "steps", "cfg", "sampler_name", "scheduler"),
    "CLIPTextEncode": ("text",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
}


def read(texts: dict[str, str], choice: str | None = None) -> Found | None:
    graph = _api_graph(json_object(texts.get("prompt")))
    if graph is None:
        graph = _from_workflow(json_object(texts.get("workflow")))
    if not graph:
        return None
    samplers = [nid for nid, node in graph.items() if _is_sampler(graph, nid, node)]
    if not samplers:
        return Found("ComfyUI", {}, problems=["ComfyUI graph without a sampler node: nothing to recall"])
    if len(samplers) > MAX_CHOICES and choice is None:
        return Found("ComfyUI", {}, problems=[f"ComfyUI graph with {len(samplers)} samplers: too many to offer a choice"])
    choices = [SamplerChoice(nid, _label(graph, nid)) for nid in samplers[:MAX_CHOICES]]
    if choice is not None:
        if choice not in samplers:
            return Found("ComfyUI", {}, problems=[f"ComfyUI graph has no sampler node {choice!r}"], choices=choices)
        samplers = [choice]
    if len(samplers) > 1:
        return Found("ComfyUI", {}, problems=[f"ComfyUI workflow with {len(samplers)} samplers: choose one"], choices=choices)
    return Found("ComfyUI", _sampler_fields(graph, samplers[0]), choices=choices if len(choices) > 1 else [])


def _api_graph(data: dict[str, Any] | None) -> Graph | None:
    if not data:
        return None
    graph = {str(k): v for k, v in data.items() if isinstance(v, dict) and "class_type" in v}
    return graph or None


def _from_workflow(data: dict[str, Any] | None) -> Graph | None:
    """The editor graph (nodes with widget values, links by id) as an API graph."""
    if not data or not isinstance(data.get("nodes"), list):
        return None
    links = {}
    for link in data.get("links") or []:
        if isinstance(link, list) and len(link) >= 3:
            links[link[0]] = [str(link[1]), link[2]]
    graph: Graph = {}
    for node in data["nodes"]:
        if not isinstance(node, dict) or node.get("mode") in (2, 4):  # muted or bypassed
            continue
        inputs: dict[str, Any] = {}
        names = _WIDGETS.get(node.get("type"), ())
        for name, value in zip(names, node.get("widgets_values") or []):
            if name:
                inputs[name] = value
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and slot.get("link") in links:
                inputs[slot.get("name")] = links[slot["link"]]
        graph[str(node.get("id"))] = {"class_type": node.get("type"), "inputs": inputs}
    return graph


def _inputs(node: dict[str, Any]) -> dict[str, Any]:
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _is_sampler(graph: Graph, nid: str, node: dict[str, Any]) -> bool:
    inputs = _inputs(node)
    if node.get("class_type") in _SAMPLER_TYPES:
        return True
    return ("seed" in inputs or "noise_seed" in inputs) and "steps" in inputs and ("positive" in inputs or "cfg" in inputs)


def _walk(graph: Graph, start: str, follow: tuple[str, ...]):
    """Node ids breadth-first from ``start``, along inputs whose names hold a ``follow`` hint."""
    queue, seen = deque([start]), set()
    while queue and len(seen) < 200:
        nid = queue.popleft()
        if nid in seen or nid not in graph:
            continue
        seen.add(nid)
        yield nid
        for name, value in _inputs(graph[nid]).items():
            if _is_link(value) and any(h in name for h in follow):
                queue.append(str(value[0]))


#: Links followed from one value to the node producing it, at most (a seed input linked to its own
#: node, or a 3,000-node chain, used to recurse until `RecursionError`).
MAX_LINK_DEPTH = 16
#: Samplers labelled for a choice; a graph with more is crafted, not a workflow.
MAX_CHOICES = 64


def _find(graph: Graph, start: str, keys: tuple[str, ...], follow: tuple[str, ...], want=(int, float, str),
          _depth: int = 0, _tried: set | None = None) -> Any:
    """The first value under one of ``keys`` on the nodes `_walk` reaches (a link there is
    followed to the node that produces the value, `MAX_LINK_DEPTH` links deep, each node once)."""
    tried = set() if _tried is None else _tried
    for nid in _walk(graph, start, follow):
        inputs = _inputs(graph[nid])
        for key in keys:
            value = inputs.get(key)
            if isinstance(value, want) and not isinstance(value, bool):
                return value
            if _is_link(value) and _depth < MAX_LINK_DEPTH and str(value[0]) not in tried:
                tried.add(str(value[0]))
                found = _find(graph, str(value[0]), keys + _TEXT_KEYS + ("int", "float", "seed"), (), want,
                              _depth + 1, tried)
                if found is not None:
                    return found
    return None


def _prompt(graph: Graph, sampler: str, side: str) -> str | None:
    link = _find(graph, sampler, (side,), ("guider",), want=(list,))
    if not _is_link(link):
        return None
    text = _find(graph, str(link[0]), _TEXT_KEYS, _CONDITIONING_HINTS, want=(str,))
    return text.strip() if isinstance(text, str) else None


def _sampler_fields(graph: Graph, nid: str) -> dict[str, Any]:
    f: dict[str, Any] = {"Prompt": _prompt(graph, nid, "positive"), "Negative prompt": _prompt(graph, nid, "negative"),
                         "Seed": _find(graph, nid, ("seed", "noise_seed"), ("noise",)),
                         "Steps": _find(graph, nid, ("steps",), ("sigmas",)),
                         "CFG scale": _find(graph, nid, ("cfg",), ("guider",)),
                         "Sampler": _find(graph, nid, ("sampler_name",), ("sampler",)),
                         "Schedule type": _find(graph, nid, ("scheduler",), ("sigmas",)),
                         "Model": _find(graph, nid, ("ckpt_name", "unet_name", "model_name"), ("model",)),
                         "ComfyUI sampler node": f"{graph[nid].get('class_type')} #{nid}"}
    latent = _find(graph, nid, ("latent_image",), (), want=(list,))
    if _is_link(latent):
        start = str(latent[0])
        f["Size-1"] = _find(graph, start, ("width",), _LATENT_HINTS)
        f["Size-2"] = _find(graph, start, ("height",), _LATENT_HINTS)
        kinds = _classes(graph, start)
        if any("Inpaint" in k or "SetLatentNoiseMask" in k for k in kinds):
            f["Mask mode"] = "ComfyUI inpaint"
        if any(k.startswith("VAEEncode") for k in kinds):  # an encoded image: img2img or inpaint
            f["Denoising strength"] = _inputs(graph[nid]).get("denoise", 1.0)
    return {k: v for k, v in f.items() if v is not None}


def _classes(graph: Graph, start: str) -> set[str]:
    """Class names of the nodes upstream of ``start`` along latent/image links."""
    return {str(graph[n].get("class_type")) for n in _walk(graph, start, _LATENT_HINTS)}


def _label(graph: Graph, nid: str) -> str:
    f = _sampler_fields(graph, nid)
    prompt = str(f.get("Prompt") or "")
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    return f"{graph[nid].get('class_type')} #{nid}: seed {f.get('Seed', '?')}, {f.get('Steps', '?')} steps, «{prompt}»"
