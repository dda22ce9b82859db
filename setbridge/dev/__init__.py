"""Development tools, not part of the product: a private Mosquitto and simulated lights."""
