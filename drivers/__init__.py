"""Everything that speaks to a device: protocol cores, transports, sessions, analyser profiles."""
