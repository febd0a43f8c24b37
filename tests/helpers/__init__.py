"""What the tests share: the servers they run against, the ways they run the CLI,
and the values and files they build. Test modules import from here; conftest.py
holds only fixtures (and registers the session-scoped servers once).

Imported as ``helpers`` (``from helpers.cli import invoke``): tests/ has no
``__init__.py``, so pytest (prepend import mode, the default) puts tests/ on
``sys.path`` when it loads tests/conftest.py, whatever the working folder. A
process a test starts does not inherit that: such a child imports only
bsecrets, or must be given tests/ on PYTHONPATH.

* ``values``: PASSPHRASE, CANARY, HOSTILE.
* ``cli``: the CLI in-process (``invoke``), as a real process (``run_cli``) or
  on a pseudo-terminal (``run_on_tty``); putting and reading values through it;
  ``assert_error``.
* ``local_vault``: a local vault file made in-process.
* ``scratch``: a folder on tmpfs, for tests that rewrite a vault many times and
  whose subject is not the disk (no fsync wait per audited read).
* ``github_env``: what a GitHub runner reads from ``$GITHUB_ENV``.
* ``openbao_server``, ``moto_server``, ``secret_service``: the real servers and
  daemons (session fixtures, registered in conftest.py).
* ``vault_env``, ``aws_env``: profiles and adapters for Vault and AWS environments.
* ``loopback_proxy``: a proxy in front of a real server, for timing faults.
* ``fake_kubernetes``: Kubernetes' TokenReview API, for OpenBao's kubernetes auth.
* ``file_keyring``: a file-backed keyring backend, with its fixture.
* ``walk_runner``: a script, not imported: the audit walk on two cores in a process of
  its own (a fork must not copy pytest), for tests/test_parallel_walk.py.
* ``totp``: an authenticator app for the tests of MFA and protected environments
  (codes from an enrolment's URI, of increasing steps), and their CLI helpers.
"""
