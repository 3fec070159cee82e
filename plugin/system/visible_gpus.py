"""Which physical GPUs this process can see, from ``CUDA_VISIBLE_DEVICES``.

CUDA numbers the visible GPUs 0..n-1 in the order the variable lists them, so
``CUDA_VISIBLE_DEVICES=2,0`` makes physical GPU 2 ``cuda:0``. We follow CUDA's rules:
entries are indices or ``GPU-<uuid>`` (a unique prefix is enough); the list ends at the
first entry that is invalid, out of range, unknown or repeated; an empty value hides
every GPU; an unset variable shows them all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

_logger = logging.getLogger(__name__)

ENV_VISIBLE = "CUDA_VISIBLE_DEVICES"


def parse_cuda_visible_devices(value: str | None) -> list[int | str] | None:
    """Entries of ``CUDA_VISIBLE_DEVICES``: ints for indices, strings for UUIDs.

    ``None`` (unset) -> ``None`` (all GPUs); ``""`` -> ``[]``; ``"0,2"`` -> ``[0, 2]``;
    ``"GPU-8f2a,1"`` -> ``["GPU-8f2a", 1]``. Parsing stops at the first invalid entry
    (``"0,-1,2"`` -> ``[0]``), as CUDA does.
    """
    if value is None:
        return None
    entries: list[int | str] = []
    for raw in value.split(","):
        token = raw.strip()
        if token.isdigit():
            entries.append(int(token))
        elif token[:4].upper() in ("GPU-", "MIG-") and len(token) > 4:
            entries.append(token)
        else:
            break
    return entries


def resolve_visible_gpus(value: str | None, physical_uuids: Sequence[str]) -> list[int]:
    """Physical (NVML) indices of the visible GPUs, in CUDA order.

    ``physical_uuids[i]`` is the UUID of NVML device ``i`` (``nvmlDeviceGetUUID``).
    Position ``k`` of the result is ``cuda:k``. MIG instances are not mapped to a
    whole GPU, so a ``MIG-`` entry ends the list (no metrics rather than wrong ones).
    """
    entries = parse_cuda_visible_devices(value)
    if entries is None:
        return list(range(len(physical_uuids)))
    uuids = [u.lower() for u in physical_uuids]
    visible: list[int] = []
    for entry in entries:
        if isinstance(entry, int):
            index = entry if entry < len(uuids) else None
        else:
            matches = [i for i, u in enumerate(uuids) if u.startswith(entry.lower())]
            index = matches[0] if len(matches) == 1 else None
        if index is None or index in visible:
            _logger.debug("%s entry %r matches no GPU; ignoring it and the rest", ENV_VISIBLE, entry)
            break
        visible.append(index)
    return visible
