"""Sub-commands of the ``setbridge`` CLI, one module each with ``register(subparsers)``."""
