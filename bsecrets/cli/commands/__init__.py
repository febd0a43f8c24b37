"""One module per command group; app.py builds each command only when it is invoked."""
