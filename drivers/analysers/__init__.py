"""The analyser drivers: shared machinery here, one profile per analyser family in ``profiles``.

Machinery: ``astm_host`` (the ASTM host-role driver), ``astm_base`` and ``astm_messages`` (what
a profile is, and the record readers the ASTM profiles share), ``generic_hl7`` (the HL7 v2 MLLP
receiver) and ``site`` (site policy, such as the zone of the analysers' clocks). A profile maps
one analyser's messages to canonical observations: no I/O, no driver machinery.
"""
