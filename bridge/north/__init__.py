"""North over MQTT: every published reading to a broker, through a durable outbox.

``settings`` turns the ``BRIDGE_MQTT_*`` settings into a connection; ``outbox`` keeps what
is bound for the broker on disk until the broker acknowledged it; ``json_format`` and
``sparkplug`` say what goes on which topic; ``link`` runs the connection; ``writes``
answers write requests that arrive over MQTT.
"""
