"""botocore clients for one AWS environment.

* Credentials: the AWS SDK's usual chain (environment, AWS_PROFILE and the
  config files, SSO, container and instance roles), read by botocore.
* ``role_arn``: assumed with STS using those credentials. The temporary
  credentials are kept in the local vault's SealedCache until five minutes
  before they expire, so the next commands make no STS call. When the local
  vault cannot be opened without a prompt, nothing is cached.
* Retries: botocore's ``standard`` mode (or ``adaptive`` via AWS_RETRY_MODE),
  with connect/read timeouts and attempts bounded in settings.py, and every
  attempt held to the operation's time budget (attempts.py).
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bsecrets import __version__, tracing
from bsecrets.backends.aws.attempts import AttemptGuard
from bsecrets.backends.aws.call_record import BudgetSpent
from bsecrets.backends.aws.errors import translate
from bsecrets.backends.aws.settings import CONNECT_TIMEOUT, READ_TIMEOUT
from bsecrets.backends.budget import Budget
from bsecrets.crypto.keys import sha256_hex
from bsecrets.errors import BsecretsError
from bsecrets.models import AccessContext
from bsecrets.timeutil import iso, parse_iso
from bsecrets.vaultfile.cache import SealedCache

if TYPE_CHECKING:
    from bsecrets.backends.aws.settings import AwsSettings
    from bsecrets.backends.registry import BackendContext

CACHE_NS = "aws-sts"
ROLE_SECONDS = 3600  # the default maximum session duration of an IAM role
REFRESH_MARGIN = timedelta(minutes=5)  # stop using cached credentials this long before expiry


class AwsClients:
    def __init__(
        self, settings: AwsSettings, context: BackendContext, budget: Budget | None = None
    ) -> None:
        self.settings = settings
        self.context = context
        self.budget = budget or Budget(settings.timeout_s, f"environments.{settings.env}.timeout")
        self.guard = AttemptGuard(self.budget)  # every client's attempts, under the budget
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._role: dict[str, str] | None = None
        self._role_until: datetime | None = None  # renew the clients' credentials from then on
        self._role_expires: datetime | None = None
        self.role_source = ""  # "sts" or "cache" once role credentials are in use

    # --- clients ----------------------------------------------------------

    def session(self) -> Any:
        if self._session is None:
            import botocore.session

            self._session = botocore.session.Session(profile=self.settings.aws_profile)
        return self._session

    def config(self) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={
                "mode": self.settings.retry_mode,
                "total_max_attempts": self.settings.max_attempts,
            },
            user_agent_extra=f"bsecrets/{__version__}",
        )

    def client(self, service: str) -> Any:
        """A client for ``service`` (secretsmanager, kms, sts), built once; with
        ``role_arn``, under the role's credentials (renewed when they run out)."""
        if self._role_until is not None and self.context.clock() >= self._role_until:
            self.close()
            self._role = self._role_until = None
        if service not in self._clients:
            creds = self.role_credentials() if self.settings.role_arn else {}
            self._clients[service] = self._new_client(service, **creds)
        return self._clients[service]

    def _new_client(self, service: str, **creds: str) -> Any:
        client = self.session().create_client(
            service,
            region_name=self.settings.region,
            endpoint_url=self.settings.endpoint(service),
            config=self.config(),
            **creds,
        )
        self.guard.attach(client)
        tracing.attach_botocore(client)  # a span per request when traces are on
        return client

    def close(self) -> None:
        for client in self._clients.values():
            close = getattr(client, "close", None)
            if callable(close):
                close()
        self._clients.clear()

    # --- role assumption ------------------------------------------------------

    def role_credentials(self) -> dict[str, str]:
        """botocore client keyword arguments for the assumed role."""
        if self._role is not None:
            return self._role
        cache = self._cache()
        key = self._cache_key()
        entry = cache.get(CACHE_NS, key) if cache is not None else None
        if entry is None:
            entry = self._assume_role()
            self.role_source = "sts"
            expiration = parse_iso(entry["expiration"])
            # Fresh from STS: this process uses them until a minute before they expire
            # (the wider cache margin would loop if the local clock runs ahead).
            self._role_until = expiration - timedelta(minutes=1)
            if cache is not None:  # an optimisation: the credentials work without it
                with contextlib.suppress(BsecretsError):
                    cache.put(CACHE_NS, key, entry, expiration - REFRESH_MARGIN)
        else:
            self.role_source = "cache"
            self._role_until = parse_iso(entry["expiration"]) - REFRESH_MARGIN
        self._role_expires = parse_iso(entry["expiration"])
        self._role = {
            "aws_access_key_id": entry["access_key_id"],
            "aws_secret_access_key": entry["secret_access_key"],
            "aws_session_token": entry["session_token"],
        }
        return self._role

    @property
    def role_expires_at(self) -> datetime | None:
        return self._role_expires

    def drop_cached_role(self) -> None:
        """Forget the role credentials (e.g. AWS says they expired or were revoked)."""
        self.close()
        self._role = self._role_until = None
        cache = self._cache()
        if cache is not None:
            with contextlib.suppress(BsecretsError):
                cache.delete(CACHE_NS, self._cache_key())

    def _assume_role(self) -> dict[str, str]:
        import botocore.exceptions

        arn = str(self.settings.role_arn)
        record = self.guard.begin()
        try:
            sts = self._new_client("sts")
            response = sts.assume_role(
                RoleArn=arn, RoleSessionName=self._session_name(), DurationSeconds=ROLE_SECONDS
            )
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            BudgetSpent,
        ) as exc:
            error = translate(
                exc, self.settings, f"assuming role {arn}", subject=f"role {arn}",
                record=record, budget=self.budget,
            )  # fmt: skip
            raise error from exc
        creds = response["Credentials"]
        return {
            "access_key_id": creds["AccessKeyId"],
            "secret_access_key": creds["SecretAccessKey"],
            "session_token": creds["SessionToken"],
            "expiration": iso(creds["Expiration"]),
        }

    def _session_name(self) -> str:
        """Shows in CloudTrail as the role session: bsecrets, environment, OS user."""
        raw = f"bsecrets-{self.settings.env}-{AccessContext.current().os_user}"
        return re.sub(r"[^\w+=,.@-]", "-", raw)[:64]

    def _cache(self) -> SealedCache | None:
        return SealedCache.open_quietly(self.context.local_vault, self.context.clock)

    def _cache_key(self) -> str:
        """A digest of what the credentials depend on: the role, where STS is, and
        who assumed it (AWS_PROFILE and access key id, never a secret key)."""
        s = self.settings
        parts = (s.env, str(s.role_arn), s.region, s.endpoint("sts") or "", s.source_identity)
        return sha256_hex("\x00".join(parts).encode())
