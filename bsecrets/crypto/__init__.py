"""The key hierarchy and the second factor (one-time codes and the policy that accepts
them), composed from the cryptography package's primitives. Imports only bsecrets.errors."""
