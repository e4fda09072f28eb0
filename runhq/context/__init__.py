"""Context providers: the facts a run gathers before its model call."""
