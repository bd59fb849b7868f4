"""Why a download stopped, in one line the user can act on: the two error types every part of a
download raises (planning, transfer, the CLI and the dialog catch them), and `explain`, which turns
any other failure (hub, network, HTTP status, disk) into the same kind of line."""

from __future__ import annotations

import errno

from app.storage.paths import hub_endpoint


class DownloadError(Exception):
    """A download that cannot go on; ``str(exc)`` is one line saying why and what to do."""


class DownloadCancelled(DownloadError):
    """The user cancelled; the partial files stay in the staging folder for the next attempt."""


def status_text(status: int, what: str) -> str:
    """One line for an HTTP error status of ``what`` (a URL or a model name)."""
    if status == 401:
        return f"{what}: 401 unauthorized: log in (hf auth login) or set HF_TOKEN, and accept the model's licence on its page if it is gated"
    if status == 403:
        return f"{what}: 403 forbidden: your token may not access this model; accept its licence on its page"
    if status == 404:
        return f"{what}: 404 not found; check the name"
    return f"{what}: the server answered HTTP {status}; try again later"


def explain(exc: BaseException, what: str) -> str:
    """One line for any failure of a download: no network, 401 gated, 404, disk full, ..."""
    if isinstance(exc, DownloadError):
        return str(exc)
    name = type(exc).__name__
    if name == "OfflineModeIsEnabled":
        return "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so downloads are off; unset it to download"
    if name == "GatedRepoError":
        return (f"{what} is gated (401): accept its licence on its Hugging Face page, then log in "
                "(hf auth login) or set HF_TOKEN")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "RemoteEntryNotFoundError", "EntryNotFoundError"):
        status = getattr(getattr(exc, "response", None), "status_code", 404)
        if status == 401:
            return f"{what}: not found or private (401); check the name, or log in (hf auth login) if it is gated"
        return f"{what}: not found on {hub_endpoint()} (404); check the name"
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", 0) >= 400:
        return status_text(response.status_code, what)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"disk full while downloading {what}; free some space and run it again to resume"
    if name in ("ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "ReadError",
                "NetworkError", "TimeoutException", "PoolTimeout", "ProxyError", "LocalProtocolError") or \
            isinstance(exc, (ConnectionError, TimeoutError)):
        return f"no network: cannot reach the server for {what} ({exc}); check the connection and run it again to resume"
    if isinstance(exc, OSError):
        return f"cannot write the download of {what}: {exc.strerror or exc}"
    return f"download of {what} failed: {name}: {exc}"
