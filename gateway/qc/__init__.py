"""Quality control: the Westgard multirule engine (pure) and the series reader for `trygg qc`."""
