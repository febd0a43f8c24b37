"""Test suites shipped with bsecrets (as keyring ships keyring.testing): the backend
contract. Imports pytest."""
