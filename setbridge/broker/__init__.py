"""The stage's Mosquitto broker as setbridge configures it: its config file, ACL, users and TLS certificates."""
