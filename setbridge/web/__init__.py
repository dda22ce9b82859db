"""``setbridge web``: the stage in a browser, as an ordinary client of the MQTT contract.

- :mod:`.passwords` — scrypt password hashes for the ``[web.users]`` table;
- :mod:`.stage` — what the bus says about every set, hub, light and card, with the lights' rules;
- :mod:`.takes` — the take log in SQLite, fed by a persistent MQTT session;
- :mod:`.feed` — the MQTT connections and the fan-out to event streams;
- :mod:`.app` — the Starlette application: pages, event streams, login and control.
"""
