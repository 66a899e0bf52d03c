"""Web dashboard: server-rendered pages and the JSON API."""
