"""Names meant for the Hugging Face Hub, answered at once when the Hub cannot be reached.

huggingface_hub retries a failed request five times with backoff (about 30 s and ten lines
of logs) before transformers reports it. One short probe of the endpoint decides first: with
the Hub unreachable, a model in the local Hub cache loads from its snapshot directory (as
`HF_HUB_OFFLINE=1` would, without a request), and one not in the cache fails with one line.
"""

from __future__ import annotations

import functools
from pathlib import Path

from huggingface_hub import constants, get_session, snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id

# a reachable Hub answers a HEAD within this; DNS failure and refused connections are instant
PROBE_TIMEOUT_S = 2.0


def resolve_hub_name(name: str) -> str:
    """What to load for a Hub id: the id, or its cached snapshot directory when the Hub cannot be
    reached; an invalid id, or one neither reachable nor cached, is refused now."""
    try:
        validate_repo_id(name)
    except HFValidationError as err:
        raise FileNotFoundError(
            f"{name}: no local directory of that name ({Path(name).absolute()}) and not a Hugging Face Hub "
            f"id ({str(err).splitlines()[0]})"
        ) from err
    if constants.HF_HUB_OFFLINE:
        return name  # the Hub's own offline mode answers from the cache without retrying
    reason = hub_unreachable(constants.ENDPOINT)
    if reason is None:
        return name
    try:
        return snapshot_download(name, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    raise FileNotFoundError(
        f"{name}: no local directory of that name ({Path(name).absolute()}), and the Hugging Face Hub "
        f"({constants.ENDPOINT}) cannot be reached ({reason}) nor is the model in its cache; check the "
        "name, or the network"
    )


@functools.cache
def hub_unreachable(endpoint: str) -> str | None:
    """Why `endpoint` cannot be reached (one probe per process and endpoint), or None if it answers."""
    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 (transport errors: requests, httpx or httpx2 by hub version)
        return " ".join(str(err).split())[:120] or type(err).__name__
    return None
