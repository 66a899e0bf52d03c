"""Pure rule functions over a result and its context; each returns holds."""
