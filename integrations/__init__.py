"""Meet users where they train: read other frameworks' configs (staleness τ) and metric logs (results store)."""
