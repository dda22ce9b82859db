"""Provisioning: the ``config.json`` a recording light needs to join a stage's broker and set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings


def light_config(settings: Settings, light_id: str, set_id: str | None = None, light_password: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """A light's ``config.json`` content for the broker and set of ``settings``.

    With ``light_password`` the light logs in as its own user (its id), as on a secured broker;
    else with the ``[mqtt]`` user. With ``[mqtt.tls]`` on, the light pins ``[mqtt.tls] ca``."""
    m = settings.mqtt
    mqtt: dict[str, Any] = {"host": m.host, "port": m.port, "base_topic": m.base_topic}
    if light_password is not None:
        mqtt["user"], mqtt["password"] = light_id, light_password
    elif m.username:
        mqtt["user"] = m.username
        if m.password is not None:
            mqtt["password"] = m.password.get_secret_value()
    if m.tls.enabled and m.tls.ca is not None:
        mqtt["tls"], mqtt["ca"] = True, str(Path(m.tls.ca).resolve())
    cfg: dict[str, Any] = {
        "id": light_id,
        "set": set_id or settings.hub.set,
        "hub": settings.hub.id,
        "mqtt": mqtt,
        "output": {"type": "relay", "pin": 2},
    }
    cfg.update(extra)
    return cfg
