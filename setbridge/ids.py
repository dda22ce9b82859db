"""Identifiers that name MQTT topic levels (hubs, sets, lights, web users).

On the ground floor: the contract's payload models and the configuration both use :data:`Id`,
and neither depends on the other for it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
"""An identifier used in MQTT topics: lower-case letters, digits and dashes."""
