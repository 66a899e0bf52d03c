"""The worklist: orders placed for specimens by the LIS or a person, read by host queries."""
