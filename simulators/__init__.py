"""Simulated analysers and a simulated LIS, built on the same protocol cores in the other role."""
