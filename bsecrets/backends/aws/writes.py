"""Writing a secret to AWS without overwriting what another writer just wrote.

A new secret is one CreateSecret (version 1, tags, KMS key, all at once). A
new version of an existing secret is two steps:

1. PutSecretValue with ClientRequestToken ``bsecrets-version-<N>`` and only
   the label ``bsecrets-pending``: readers of AWSCURRENT do not see it yet.
   Two bsecrets writers of the same N send the same token with different
   values, and AWS refuses the second (ResourceExistsException).
2. UpdateSecretVersionStage moves AWSCURRENT to it *from the version read as
   current*. AWS refuses the move when RemoveFromVersionId no longer holds
   AWSCURRENT, so this is a compare-and-swap against every writer, bsecrets
   or not (the AWS console, the CLI, a rotation Lambda).

A write that loses stays in AWS as a version without labels (AWS cannot
delete a single version): readable by number, never current. Tags (authors,
user tags) and the description follow the value; AWS has no transaction
across them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.api import SM
from bsecrets.backends.aws.errors import aws_code
from bsecrets.backends.aws.settings import MAX_TAGS, check_value_size
from bsecrets.backends.aws.versions import (
    AUTHORS_TAG,
    CURRENT,
    ENV_TAG,
    PENDING,
    AwsVersion,
    add_author,
    bad_user_tag,
    current_of,
    tag_dict,
    tag_list,
    user_tags,
    value_params,
    version_token,
)
from bsecrets.core.errors import AlreadyExists, BsecretsError, Conflict, UsageError, VersionConflict
from bsecrets.core.models import WriteResult

if TYPE_CHECKING:
    from bsecrets.backends.aws.api import SecretsApi

MAX_USER_TAGS = MAX_TAGS - 2  # bsecrets:env and bsecrets:authors are ours


class SecretWriter:
    def __init__(self, api: SecretsApi) -> None:
        self.api = api
        self.env = api.env

    def put(
        self,
        name: str,
        value: bytes,
        *,
        actor: str,
        tags: dict[str, str] | None,
        description: str | None,
        if_version: int | None,
    ) -> WriteResult:
        check_value_size(value)
        if tags is not None:
            check_user_tags(tags)
        sid, meta = self.api.describe_or_none(name)
        if meta is None:
            if if_version not in (None, 0):
                raise VersionConflict(
                    f"secret '{name}' does not exist (expected version {if_version})"
                )
            return self._create(name, sid, value, actor, tags, description)
        versions = self.api.versions(name, sid)
        current = current_of(versions)
        at = current.number if current else 0
        if if_version is not None and if_version != at:
            raise VersionConflict(f"secret '{name}' is at version {at}, not {if_version}")
        number = max((v.number for v in versions), default=0) + 1
        if meta.get("DeletedDate"):  # put after rm revives the secret, as on every backend
            self.api.call(SM, "restore_secret", f"restoring secret '{name}'", SecretId=sid)
        self._commit(name, sid, value, number, current)
        self._update_metadata(name, sid, meta, number, actor, tags, description)
        return WriteResult(name=name, env=self.env, version=number)

    def _create(
        self,
        name: str,
        sid: str,
        value: bytes,
        actor: str,
        tags: dict[str, str] | None,
        description: str | None,
    ) -> WriteResult:
        # Secrets Manager checks the key only when it first encrypts, and moto
        # never does (moto gap 3): check it ourselves, on AWS as on moto.
        self.api.check_kms_key()
        all_tags = {ENV_TAG: self.env, AUTHORS_TAG: add_author("", 1, actor), **(tags or {})}
        params: dict[str, Any] = {
            "Name": sid,
            "ClientRequestToken": version_token(1),
            "Tags": tag_list(all_tags),
            **value_params(value),
        }
        if self.api.settings.kms_key_id:
            params["KmsKeyId"] = self.api.settings.kms_key_id
        if description:
            params["Description"] = description
        try:
            self.api.call(
                SM, "create_secret", f"creating secret '{name}'", subject=f"secret '{name}'",
                redact=value, **params,
            )  # fmt: skip
        except AlreadyExists as exc:
            raise VersionConflict(
                f"secret '{name}' was created by another writer at the same time ({aws_code(exc)})"
            ) from exc
        except UsageError as exc:
            if aws_code(exc) == "InvalidRequestException" and "delet" in exc.message.lower():
                raise Conflict(
                    f"AWS is still deleting an earlier secret named '{sid}' ({aws_code(exc)})",
                    hint="a purged name can be reused after a few seconds; try again",
                ) from exc
            raise
        return WriteResult(name=name, env=self.env, version=1)

    def _commit(
        self, name: str, sid: str, value: bytes, number: int, current: AwsVersion | None
    ) -> None:
        """Steps 1 and 2 of the module docstring."""
        token = version_token(number)
        action, subject = f"writing secret '{name}'", f"secret '{name}'"
        try:
            written = self.api.call(
                SM, "put_secret_value", action, subject=subject, redact=value,
                SecretId=sid, ClientRequestToken=token, VersionStages=[PENDING],
                **value_params(value),
            )  # fmt: skip
        except AlreadyExists as exc:
            raise VersionConflict(
                f"secret '{name}': another writer created version {number} at the same time "
                f"({aws_code(exc)})"
            ) from exc
        if CURRENT not in (written.get("VersionStages") or []):  # AWS makes a first value current
            move: dict[str, Any] = {"SecretId": sid, "VersionStage": CURRENT}
            move["MoveToVersionId"] = token
            if current is not None:
                move["RemoveFromVersionId"] = current.version_id
            try:
                self.api.call(SM, "update_secret_version_stage", action, subject=subject, **move)
            except BsecretsError as exc:
                self._unlabel_pending(sid, token)
                if self.api.current_id(name) != (current.version_id if current else None):
                    raise VersionConflict(
                        f"secret '{name}' changed while version {number} was being written "
                        f"({aws_code(exc)}); the current value was not replaced"
                    ) from exc
                raise
        self._unlabel_pending(sid, token)

    def _unlabel_pending(self, sid: str, token: str) -> None:
        """Best effort: a later writer's put may already have taken the label."""
        with contextlib.suppress(BsecretsError):
            self.api.call(
                SM, "update_secret_version_stage", "tidying a staging label",
                SecretId=sid, VersionStage=PENDING, RemoveFromVersionId=token,
            )  # fmt: skip

    def _update_metadata(
        self,
        name: str,
        sid: str,
        meta: dict[str, Any],
        number: int,
        actor: str,
        tags: dict[str, str] | None,
        description: str | None,
    ) -> None:
        """Authors, user tags and description, after the value; a failure says
        the value was stored."""
        action = f"updating the tags of secret '{name}'"
        try:
            old = tag_dict(meta.get("Tags"))
            new = {AUTHORS_TAG: add_author(old.get(AUTHORS_TAG, ""), number, actor)}
            if ENV_TAG not in old:
                new[ENV_TAG] = self.env
            if tags is not None:
                new.update(tags)
                stale = [k for k in user_tags(old) if k not in tags]
                if stale:
                    self.api.call(SM, "untag_resource", action, SecretId=sid, TagKeys=stale)
            self.api.call(SM, "tag_resource", action, SecretId=sid, Tags=tag_list(new))
            if description is not None and description != (meta.get("Description") or ""):
                self.api.call(
                    SM, "update_secret", f"updating the description of secret '{name}'",
                    SecretId=sid, Description=description,
                )  # fmt: skip
        except BsecretsError as exc:
            raise type(exc)(
                f"secret '{name}' v{number} was stored, but {exc.message}", hint=exc.hint
            ) from exc


def check_user_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_USER_TAGS:
        raise UsageError(f"at most {MAX_USER_TAGS} tags per secret on AWS")
    for key, val in tags.items():
        problem = bad_user_tag(key, val)
        if problem:
            raise UsageError(problem)
