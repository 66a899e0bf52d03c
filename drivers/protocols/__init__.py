"""Protocol cores: sans-IO, no asyncio, serial, sqlalchemy or aiomqtt imports."""
