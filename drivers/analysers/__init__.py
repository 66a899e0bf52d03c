"""Analyser profiles: which protocol and role, quirks, mapping to canonical observations."""
