"""A rotation's pending version on AWS: the create and finish steps of AWS's own
rotation protocol (services/rotation.py, docs/rotation.md).

* **create** (``stage``): PutSecretValue of the new value with the next version's
  token (versions.py) and only the label AWSPENDING: readers of AWSCURRENT do not
  see it, ``history`` shows it as pending, AWS tooling sees it where AWS's protocol
  puts it.
* **finish** (``make_current``): UpdateSecretVersionStage moves AWSCURRENT to it from
  the version the rotation started from. AWS refuses the move when that version no
  longer holds AWSCURRENT: a compare-and-swap against every writer. AWS labels the
  old version AWSPREVIOUS itself.
* **cancel** (``unstage``): AWSPENDING is removed; the version stays, unlabelled (AWS
  cannot delete one version).
"""

from __future__ import annotations

from bsecrets.backends.aws.api import SM
from bsecrets.backends.aws.errors import aws_code
from bsecrets.backends.aws.settings import check_value_size
from bsecrets.backends.aws.versions import (
    AWSPENDING,
    CURRENT,
    current_of,
    value_params,
    version_token,
)
from bsecrets.backends.aws.writes import UNREAD, MetadataPlan, SecretWriter
from bsecrets.errors import AlreadyExists, BsecretsError, VersionConflict, VersionNotFound
from bsecrets.models import WriteResult


class StagingWriter(SecretWriter):
    """SecretWriter with a rotation's pending version."""

    def stage(self, name: str, value: bytes, actor: str) -> int | None:
        """The rotation's create step: ``value`` as a new version labelled AWSPENDING only
        (AWSCURRENT stays where it is), with the next version number's token; a version
        labelled AWSPENDING that holds ``value`` already is reused (a resumed create).
        None when there is no current version to stage against (the finish creates it)."""
        check_value_size(value)
        sid, meta = self.api.describe_or_none(name)
        if meta is None or meta.get("DeletedDate"):
            return None
        versions = self.api.versions(name, sid)
        if current_of(versions) is None:
            return None
        staged = next((v for v in versions if AWSPENDING in v.stages and not v.current), None)
        if staged is not None and self._holds(name, sid, staged.version_id, value):
            return staged.number
        number = max(v.number for v in versions) + 1
        token = version_token(number)
        try:
            self.api.call(
                SM, "put_secret_value", f"staging version {number} of secret '{name}'",
                subject=f"secret '{name}'", redact=value,
                SecretId=sid, ClientRequestToken=token, VersionStages=[AWSPENDING],
                **value_params(value),
            )  # fmt: skip
        except AlreadyExists as exc:
            raise VersionConflict(
                f"secret '{name}': another writer created version {number} at the same time "
                f"({aws_code(exc)}); nothing was staged"
            ) from exc
        except BsecretsError as exc:
            if exc.applied != "unknown" or not self._holds(name, sid, token, value):
                raise  # labelled AWSPENDING only: nothing current changed either way
        plan = MetadataPlan.of(meta, self.env, number, actor, None, None)
        self._record(name, sid, number, plan, "")
        return number

    def make_current(self, name: str, number: int, if_version: int) -> WriteResult:
        """The rotation's finish step: AWSCURRENT moves to staged version ``number`` from
        the version that was current at ``if_version`` (AWS refuses the move if another
        writer moved it: a compare-and-swap; AWS labels the old one AWSPREVIOUS), then
        AWSPENDING is removed. A move that happened already is recognised."""
        sid, _meta = self.api.describe(name)
        versions = self.api.versions(name, sid)
        current = current_of(versions)
        at = current.number if current else 0
        token = version_token(number)
        if at != number:
            if at != if_version or current is None:
                raise VersionConflict(
                    f"secret '{name}' is at version {at}, not {if_version}; nothing was changed"
                )
            if not any(v.number == number for v in versions):
                raise VersionNotFound(f"secret '{name}' has no staged version {number}")
            action = f"making version {number} of secret '{name}' current (moving {CURRENT})"
            try:
                self.api.call(
                    SM, "update_secret_version_stage", action, subject=f"secret '{name}'",
                    SecretId=sid, VersionStage=CURRENT, MoveToVersionId=token,
                    RemoveFromVersionId=current.version_id,
                )  # fmt: skip
            except BsecretsError as exc:
                now = self._current_id(name)
                if now == token:  # the answer was lost, not the move
                    pass
                elif exc.applied == "unknown":
                    raise self._maybe_applied(exc, name) from exc
                elif now not in (UNREAD, current.version_id):
                    raise VersionConflict(
                        f"secret '{name}' changed while version {number} was being made "
                        f"current ({aws_code(exc)}); the current value was not replaced"
                    ) from exc
                else:
                    raise
        self._unlabel(sid, token, AWSPENDING)
        return WriteResult(name=name, env=self.env, version=number)

    def unstage(self, name: str, number: int) -> None:
        """A cancelled rotation: staged version ``number`` loses AWSPENDING (AWS keeps the
        version itself, unlabelled, as it keeps every version until it ages out)."""
        sid, _meta = self.api.describe(name)
        token = version_token(number)
        if any(v.version_id == token and AWSPENDING in v.stages
               for v in self.api.versions(name, sid)):  # fmt: skip
            self.api.call(
                SM, "update_secret_version_stage", f"unstaging version {number} of '{name}'",
                subject=f"secret '{name}'",
                SecretId=sid, VersionStage=AWSPENDING, RemoveFromVersionId=token,
            )  # fmt: skip
