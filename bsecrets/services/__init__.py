"""The façade (SecretsManager) and the workflows built on it. Imported only by the front
ends (cli; later sdk, server)."""
