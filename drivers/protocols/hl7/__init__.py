"""HL7 v2 sans-IO pieces: MLLP framing, message parsing, acknowledgements."""
