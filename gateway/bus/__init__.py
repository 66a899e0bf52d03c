"""MQTT event bus: topics, JSON events, reconnect supervisor."""
