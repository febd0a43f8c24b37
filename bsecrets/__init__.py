"""bsecrets: a secrets manager for every environment, driven from one command line.

Importing this package loads nothing heavy; see bsecrets.cli for the commands
and bsecrets.services.manager.SecretsManager for the façade every caller uses.
"""

__version__ = "0.1.0"
