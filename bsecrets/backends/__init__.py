"""The secret stores behind bsecrets.ports.SecretBackend: the registry (which module builds
each backend), the local adapter, Vault and AWS, which know nothing of each other.
Imported by services."""
