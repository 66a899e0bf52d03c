"""The ASTM analyser profiles: one module per analyser family, each mapping that analyser's
E1394 records to canonical observations (the shared machinery is one folder up)."""
