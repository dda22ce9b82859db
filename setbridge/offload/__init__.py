"""Offload-complete relay: card offload reports from MQTT, the CLI, Hedge and ASC MHL folders,
checked, journaled and published as one normalized event per card."""
