"""The local vault file as infrastructure: SQLite store, manifest, owner and environment
keys, unlock, sessions, the sealed cache. Imported by audit, backends and services; it
imports none of them."""
