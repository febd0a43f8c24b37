"""Settled configuration: settings, the profile model and its loader, parser and cache, and
what the profile defines (generators, variable names, CI detection). Imported by the
vault file and every layer above it; it imports only the layers below (ports, models,
files, timeutil, errors)."""
