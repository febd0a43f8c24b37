"""The local encrypted vault: one SQLite file (store), its keys (vault), the
per-environment manifest (manifest) and the SecretBackend (adapter)."""
