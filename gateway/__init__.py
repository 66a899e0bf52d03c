"""Trygg: the instrument-integration gateway (rules, store, LIS forwarding, web, CLI)."""

__version__ = "0.1.0"
