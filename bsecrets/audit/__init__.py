"""The audit trail: events, the logger, the chain, the local log in the vault file, queries
and the compliance report. Imported by services and cli."""
