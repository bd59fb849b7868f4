"""Recalling generation parameters into the form (``window.params_recall``): from an opened
image's metadata (offered in the message bar, never forced) or from a history entry, warning
about LoRAs and embeddings the recalled prompt names but this machine lacks."""

from __future__ import annotations

from collections.abc import Callable

from app.core.params import GenerationParams
from app.widgets.messages import MessageBar
from app.widgets.window_status import WindowStatus


def missing_networks_for(params: GenerationParams) -> list[str]:
    """The LoRAs tagged in a recalled prompt and embeddings in its "TI hashes" not usable here."""
    from app.service import network_files  # folder scans: only on recall

    hashes = str(params.extra.get("TI hashes", ""))
    names = [part.split(":")[0].strip() for part in hashes.split(",") if part.strip()]
    try:
        return network_files.missing_networks(params.prompt, names)
    except ValueError as exc:  # an unreadable <lora:…> weight
        return [str(exc)]


class ParamsRecall:
    """``current_params`` / ``set_params``: read and fill the form (panel and model picker)."""

    def __init__(self, current_params: Callable[[], GenerationParams], set_params: Callable[[GenerationParams], None],
                 status: WindowStatus, messages: MessageBar) -> None:
        self.current_params, self.set_params = current_params, set_params
        self.status, self.messages = status, messages

    def apply(self, params: GenerationParams, fields: frozenset[str] | None = None) -> None:
        """Show recalled ``params``; with ``fields``, only those (what the file held) replace the
        form's values, so a file that lacks a setting never wipes what the user typed."""
        if fields is not None:
            current = self.current_params()
            params = current.replace(**{f: getattr(params, f) for f in fields if hasattr(current, f)})
        self.set_params(params)
        self.status.message.setText(f"Parameters recalled (seed {params.seed})." if params.seed >= 0 else "Parameters recalled.")
        missing = missing_networks_for(params)
        if missing:
            self.messages.show_message("warning", "Not installed here", "; ".join(missing) + ". The run works without "
                                       "them, but will look different.")

    def offer(self, recalled, path: str | None = None) -> None:
        """An opened image carries generation parameters (an `app.core.sdmeta.RecallResult`):
        offer them without blocking. A ComfyUI graph with several samplers offers each one."""
        from app.core.sdmeta import recall

        if recalled.params is None:
            if recalled.choices and path:
                actions = [(c.label[:48], lambda n=c.node_id: self.offer(recall(path, choice=n), path))
                           for c in recalled.choices[:4]]
                self.messages.show_message("info", "Choose the sampler to recall", recalled.message, actions)
            return
        params = recalled.params
        summary = params.prompt[:80] + ("…" if len(params.prompt) > 80 else "")
        self.messages.show_message("info", "This image carries generation parameters",
                                   f"“{summary or 'no prompt'}”, {params.scheduler}, {params.steps} steps, seed "
                                   f"{params.seed}. ({recalled.message})",
                                   [("Recall parameters", lambda r=recalled: self.apply(r.params, r.fields_set))])
