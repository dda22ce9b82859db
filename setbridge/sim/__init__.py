"""A film set in software: simulated recording lights (run by ``setbridge lights simulate``), a
private Mosquitto or amqtt broker, a link between brokers that can be cut, request bursts and a raw
MQTT 5 publisher, for the demo, the tests and the benchmarks."""
