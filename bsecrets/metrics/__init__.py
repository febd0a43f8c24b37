"""Prometheus metrics fed by the audited operation path (docs/observability.md)."""
