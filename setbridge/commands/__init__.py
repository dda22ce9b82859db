"""Sub-commands of the ``setbridge`` CLI, one module each with ``register(subparsers)``
(:data:`setbridge.cli.COMMANDS`), and the modules only they use: the short-lived MQTT client
(:mod:`.tool_client`), stage and lot health (:mod:`.stage_health`, :mod:`.lot_health`,
:mod:`.status_codes`), message descriptions for ``watch`` (:mod:`.describe`) and a light's
``config.json`` (:mod:`.provision`)."""
