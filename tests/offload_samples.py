"""Offload payloads modelled on what the offload tools document (derived, not copied).

Hedge / OffShoot script events: each parameter is named after its event
(``FileCopyCompleted_destinationPath``), timestamps are ``YYYYMMDDHHMMSS``, durations seconds and
sizes bytes; ``FileCopyCompleted`` fires per destination, ``DiskIdle`` when a disk's transfers
are done, ``DiskAdded`` carries ``rootFilePath``/``mountedAt``. Following the Hedge scripting
knowledge base ("Events & Parameters", hedgeformac.groovehq.com/knowledge_base/topics/
events-and-parameters), docs.hedge.video/hedge/features/automation/scripts, and the parameter
list of a FileCopyCompleted script in github.com/HedgeForMac/hedge-scripts. OffShoot logs the
source's label in ``sourceInfo`` (docs.hedge.video/offshoot/features/elements).

OffShoot's verification modes (docs.hedge.video/offshoot/features/verification): "Transfer"
compares sizes, "Source" checksums the source and compares destination sizes, "Source &
Destination" reads every copy back and compares checksums. Hedge's parameters carry no mode and
no file counts, so the script adds ``verification``, ``filesCopied``, ``sourceFileCount`` and
``totalSize`` (see docs/mqtt.md).

Silverstack (kb.pomfort.com/silverstack/offloadandbackup/copy-verification-process-silverstack-
verification-behavior/): "Included in Copy Job" verifies every destination and the source by
checksum (xxHash64 BE, MD5 or SHA-1); "Separate (per Job)" may verify fewer destinations. Its
report reaches setbridge as a plain report whose copies say ``verified_by``.
"""

from __future__ import annotations

import json

SOURCE_BYTES = 128_849_018_880
SOURCE_FILES = 212


def hedge_disk_added(path: str, mounted_at: str = "20260501091502") -> dict:
    """A card mounted (Hedge ``DiskAdded``)."""
    title = path.rsplit("/", 1)[-1]
    return {"DiskAdded_title": title, "DiskAdded_rootFilePath": path, "DiskAdded_diskSize": 256_060_514_304,
            "DiskAdded_availableDiskSpace": 127_211_495_424, "DiskAdded_protocolName": "USB",
            "DiskAdded_mountedAt": mounted_at}


def hedge_disk_removed(path: str) -> dict:
    return {"DiskRemoved_title": path.rsplit("/", 1)[-1], "DiskRemoved_rootFilePath": path}


def hedge_copy_completed(source: str, destination: str, label: str | None = None, state: str = "Success",
                         mode: str | None = "Source & Destination", files: int = SOURCE_FILES,
                         copied: int = SOURCE_BYTES) -> dict:
    """One destination done (Hedge ``FileCopyCompleted``), with what the script adds."""
    event = {"FileCopyCompleted_sourcePaths": source, "FileCopyCompleted_destinationPath": destination,
             "FileCopyCompleted_bytesCopied": copied, "FileCopyCompleted_duration": 812.431907,
             "FileCopyCompleted_startedAt": "20260501091544", "FileCopyCompleted_state": state}
    if label is not None:
        event["FileCopyCompleted_sourceInfo"] = json.dumps({"label": label})
    if mode is not None:
        event.update(verification=mode, filesCopied=files, sourceFileCount=SOURCE_FILES, totalSize=SOURCE_BYTES)
    return event


def hedge_disk_idle(path: str, disk_type: str = "Source", failed: bool = False) -> dict:
    return {"DiskIdle_diskType": disk_type, "DiskIdle_rootFilePath": path, "DiskIdle_title": path.rsplit("/", 1)[-1],
            "DiskIdle_hasFailedTransfers": "YES" if failed else "NO"}


def silverstack_report(roll: str, destinations: list[str], job: str, coverage: str = "all") -> dict:
    """A Silverstack offload job as an integrator reports it: every destination checksummed
    ("Included in Copy Job"), or with ``coverage="first"`` only the first one."""
    copies = [{"path": d, "verified_by": "hash" if coverage == "all" or n == 0 else "size",
               "files": SOURCE_FILES, "bytes": SOURCE_BYTES} for n, d in enumerate(destinations)]
    return {"v": 1, "roll": roll, "status": "verified", "files": SOURCE_FILES, "bytes": SOURCE_BYTES,
            "hash": {"formats": ["xxh64"], "verified": SOURCE_FILES}, "transfer": {"id": job},
            "tool": {"name": "Silverstack"}, "destinations": copies}
