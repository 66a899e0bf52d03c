"""ASTM E1381/E1394 sans-IO core (built out by the ASTM driver issue)."""
