"""``bsecrets serve``: the REST API (docs/server.md), one more caller of the façade."""
