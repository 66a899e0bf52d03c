"""LIS side: HL7 v2.5.1 ORU^R01 builder and the forwarder over a transactional outbox."""
