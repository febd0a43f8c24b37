"""The key hierarchy, composed from the cryptography package's primitives. Imports only
bsecrets.errors."""
