"""People: roles, the tasks operators are certified for, certifications and their status.

Pure modules (no I/O): ``roles`` (who may act on which hold), ``tasks`` (what a certification
covers, and how specific a match is), ``certification`` (the status on a given day). The store's
side is ``gateway.store.people``; the rules that read these facts are in ``gateway.rules.people``.
"""
