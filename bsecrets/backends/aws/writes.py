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
across them. So that nothing is half-applied:

* a put that asks for tags or a description first sends the calls that record
  them as no-ops (``_check_can_record``): a policy that denies them refuses the
  put before the value is written;
* a plain put whose author cannot be recorded stores the value and warns;
* after a failure, the error says whether the write was applied (``applied``):
  "no" when AWS refused or nothing left, "unknown" when a request may have
  reached AWS (then AWS is asked, within the budget, and a write found applied
  counts as done), "yes" when only tags or description were not recorded.
  A clean-up read never replaces the write's own error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.api import SM
from bsecrets.backends.aws.errors import aws_code
from bsecrets.backends.aws.settings import MAX_TAGS, check_value_size
from bsecrets.backends.aws.versions import (
    AUTHORS_TAG,
    CURRENT,
    ENV_TAG,
    PENDING,
    UNKNOWN_AUTHOR,
    AwsVersion,
    add_author,
    bad_user_tag,
    current_of,
    tag_dict,
    tag_list,
    user_tags,
    value_of,
    value_params,
    version_token,
)
from bsecrets.errors import (
    AlreadyExists,
    BsecretsError,
    Conflict,
    Denied,
    NextStep,
    UsageError,
    VersionConflict,
)
from bsecrets.models import WriteResult
from bsecrets.ports import stderr_warning, value_stored_hint

if TYPE_CHECKING:
    from bsecrets.backends.aws.api import SecretsApi

MAX_USER_TAGS = MAX_TAGS - 2  # bsecrets:env and bsecrets:authors are ours
NO_TAG = "bsecrets:no-such-tag"  # removed by the permission check: no secret has it
UNREAD = "(not read)"  # what _current_id says when it could not ask: never a version id


@dataclass(frozen=True)
class MetadataPlan:
    """The tag and description calls that follow a new version's value."""

    untag: list[str]  # stale user tags (the put gave tags without them)
    tag: dict[str, str]  # the author, the env tag if missing, the put's tags
    user_tags: bool  # the put gave tags
    description: str | None  # None: unchanged

    @classmethod
    def of(
        cls,
        meta: dict[str, Any],
        env: str,
        number: int,
        actor: str,
        tags: dict[str, str] | None,
        description: str | None,
    ) -> MetadataPlan:
        old = tag_dict(meta.get("Tags"))
        new = {AUTHORS_TAG: add_author(old.get(AUTHORS_TAG, ""), number, actor)}
        if ENV_TAG not in old:
            new[ENV_TAG] = env
        stale: list[str] = []
        if tags is not None:
            new.update(tags)
            stale = [k for k in user_tags(old) if k not in tags]
        changed = description is not None and description != (meta.get("Description") or "")
        return cls(stale, new, tags is not None, description if changed else None)


class SecretWriter:
    def __init__(self, api: SecretsApi, warn: Callable[[str], None] = stderr_warning) -> None:
        self.api = api
        self.env = api.env
        self.warn = warn

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
        """A new version; an error says whether it was applied (see the module docstring)."""
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
        plan = MetadataPlan.of(meta, self.env, number, actor, tags, description)
        asked = _asked_for(tags, description)
        if asked:  # refused now rather than after the value is stored
            self._check_can_record(name, sid, meta, plan, asked)
        if meta.get("DeletedDate"):  # put after rm revives the secret, as on every backend
            try:
                self.api.call(SM, "restore_secret", f"restoring secret '{name}'", SecretId=sid)
            except BsecretsError as exc:
                raise _reworded(exc, f"{exc.message}; the write was not applied", "no") from exc
        self._commit(name, sid, value, number, current)
        self._record(name, sid, number, plan, asked)
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
        """Version 1 with its tags, key and description: one CreateSecret, all or nothing."""
        # Secrets Manager checks the key only when it first encrypts, and moto
        # never does (moto gap 3): check it ourselves, on AWS as on moto.
        self.api.check_kms_key()
        all_tags = {ENV_TAG: self.env, AUTHORS_TAG: add_author("", 1, actor), **(tags or {})}
        token = version_token(1)
        params: dict[str, Any] = {
            "Name": sid,
            "ClientRequestToken": token,
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
        except BsecretsError as exc:
            if exc.applied != "unknown":
                raise
            if self._holds(name, sid, token, value):  # the answer was lost, not the write
                return WriteResult(name=name, env=self.env, version=1)
            raise self._maybe_applied(exc, name) from exc
        return WriteResult(name=name, env=self.env, version=1)

    def _check_can_record(
        self, name: str, sid: str, meta: dict[str, Any], plan: MetadataPlan, asked: str
    ) -> None:
        """Before the value: the calls that record what the put asks for, each sent as a
        no-op (a tag set to the value it has, a tag key no secret has removed, the
        description it has), so that a policy that denies them stops the put while
        nothing is written. IAM conditions on tag keys are not covered."""
        old = tag_dict(meta.get("Tags"))
        action = f"checking that the {asked} of secret '{name}' can be recorded"
        key = next((k for k in (AUTHORS_TAG, ENV_TAG, *old) if k in old), None)
        probe = {key: old[key]} if key is not None else {ENV_TAG: self.env}
        try:
            if plan.user_tags:
                if plan.untag:
                    self.api.call(SM, "untag_resource", action, SecretId=sid, TagKeys=[NO_TAG])
                self.api.call(SM, "tag_resource", action, SecretId=sid, Tags=tag_list(probe))
            if plan.description is not None:
                self.api.call(
                    SM, "update_secret", action,
                    SecretId=sid, Description=str(meta.get("Description") or ""),
                )  # fmt: skip
        except Denied as exc:
            raise Denied(
                f"AWS does not let the {asked} of secret '{name}' be recorded in environment "
                f"'{self.env}' ({aws_code(exc)}); nothing was written",
                hint="allow secretsmanager:TagResource, UntagResource and UpdateSecret on the "
                "secret",
                step=NextStep("allow_aws_metadata_writes", env=self.env),
                applied="no",
            ) from exc
        except BsecretsError as exc:  # a check changes nothing, whatever became of it
            raise _reworded(exc, f"{exc.message}; the write was not applied", "no") from exc

    def _commit(
        self, name: str, sid: str, value: bytes, number: int, current: AwsVersion | None
    ) -> None:
        """Steps 1 and 2 of the module docstring."""
        token = version_token(number)
        action, subject = f"writing version {number} of secret '{name}'", f"secret '{name}'"
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
        except BsecretsError as exc:
            if exc.applied == "unknown" and current is None:  # AWS makes a first value current
                if self._current_id(name) == token:
                    return
                raise self._maybe_applied(exc, name) from exc
            # labelled bsecrets-pending only, the version cannot have become current
            raise _reworded(
                exc, f"{exc.message}; the write was not applied (no new current version)", "no"
            ) from exc
        if CURRENT in (written.get("VersionStages") or []):  # a first value: current already
            self._unlabel_pending(sid, token)
            return
        move: dict[str, Any] = {"SecretId": sid, "VersionStage": CURRENT}
        move["MoveToVersionId"] = token
        if current is not None:
            move["RemoveFromVersionId"] = current.version_id
        action = f"making version {number} of secret '{name}' current (moving {CURRENT})"
        try:
            self.api.call(SM, "update_secret_version_stage", action, subject=subject, **move)
        except BsecretsError as exc:
            if exc.applied == "unknown":  # the move may have reached AWS
                if self._current_id(name) == token:  # it did
                    self._unlabel_pending(sid, token)
                    return
                raise self._maybe_applied(exc, name) from exc
            self._unlabel_pending(sid, token)  # AWS refused the move: nothing is current
            now = self._current_id(name)
            before = current.version_id if current else None
            if now != UNREAD and now != before:
                raise VersionConflict(
                    f"secret '{name}' changed while version {number} was being written "
                    f"({aws_code(exc)}); the current value was not replaced"
                ) from exc
            raise  # the original failure, whatever the clean-up met
        self._unlabel_pending(sid, token)

    def _current_id(self, name: str) -> str | None:
        """The version AWSCURRENT is on, read after a failure to learn what became of a
        write: only within what is left of the budget, and never an error of its own
        (the write's is the one to report). UNREAD when it cannot be read."""
        if self.api.budget.remaining() <= 0:
            return UNREAD
        try:
            return self.api.current_id(name)
        except BsecretsError:
            return UNREAD

    def _holds(self, name: str, sid: str, token: str, value: bytes) -> bool:
        """After a lost answer: does AWS hold ``value`` as version ``token``? (Bounded as
        _current_id; a value read here is only compared, never shown.)"""
        if self.api.budget.remaining() <= 0:
            return False
        try:
            found = self.api.call(
                SM, "get_secret_value", f"reading back secret '{name}'",
                SecretId=sid, VersionId=token,
            )  # fmt: skip
        except BsecretsError:
            return False
        return value_of(found) == value

    def _maybe_applied(self, exc: BsecretsError, name: str) -> BsecretsError:
        return _reworded(
            exc,
            f"{exc.message}; the write may have been applied: check with "
            f"'bsecrets history {name} -e {self.env}'",
            "unknown",
            hint="look before retrying: a retry could write the value twice",
        )

    def _unlabel_pending(self, sid: str, token: str) -> None:
        self._unlabel(sid, token, PENDING)

    def _unlabel(self, sid: str, token: str, label: str) -> None:
        """Best effort: a later writer may already have taken the label."""
        with contextlib.suppress(BsecretsError):
            self.api.call(
                SM, "update_secret_version_stage", "tidying a staging label",
                SecretId=sid, VersionStage=label, RemoveFromVersionId=token,
            )  # fmt: skip

    def _record(self, name: str, sid: str, number: int, plan: MetadataPlan, asked: str) -> None:
        """After the value: first what the put asked for (checked before the value, so a
        failure here is a race or an outage: an error saying the value is stored), then
        the author (a failure is a warning: the value the put was for is stored)."""
        action = f"recording the {asked or 'author'} of secret '{name}'"
        try:
            if plan.untag:
                self.api.call(SM, "untag_resource", action, SecretId=sid, TagKeys=plan.untag)
            if plan.user_tags:
                self.api.call(SM, "tag_resource", action, SecretId=sid, Tags=tag_list(plan.tag))
            if plan.description is not None:
                self.api.call(
                    SM, "update_secret", action, SecretId=sid, Description=plan.description
                )
        except BsecretsError as exc:
            were = "may not have been" if exc.applied == "unknown" else "were not"
            hint, step = value_stored_hint(exc, number + 1, NextStep("check_history_of", name=name))
            raise _reworded(
                exc,
                f"the value of secret '{name}' was stored as version {number}; only its "
                f"{asked} {were} recorded: {exc.message}",
                "yes",
                hint=hint,
                step=step,
            ) from exc
        if plan.user_tags:
            return
        try:
            self.api.call(SM, "tag_resource", action, SecretId=sid, Tags=tag_list(plan.tag))
        except BsecretsError as exc:
            was = "may not have been" if exc.applied == "unknown" else "was not"
            self.warn(
                f"the author of version {number} of secret '{name}' {was} recorded: "
                f"{exc.message}; 'bsecrets history' shows it as {UNKNOWN_AUTHOR}"
            )


def _asked_for(tags: dict[str, str] | None, description: str | None) -> str:
    """What a put asks to record besides the value: "tags", "description", both or ""."""
    given = (("tags", tags is not None), ("description", description is not None))
    return " and ".join(what for what, asked in given if asked)


def _reworded(
    exc: BsecretsError,
    message: str,
    applied: str,
    hint: str | None = None,
    step: NextStep | None = None,
) -> BsecretsError:
    """``exc`` (same class, so the same exit code) with another message and ``applied``;
    its hint and next step unless others are given."""
    if hint or step is not None:
        return type(exc)(message, hint=hint, step=step, applied=applied)
    return type(exc)(message, hint=exc.hint, step=exc.step, applied=applied)


def check_user_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_USER_TAGS:
        raise UsageError(f"at most {MAX_USER_TAGS} tags per secret on AWS")
    for key, val in tags.items():
        problem = bad_user_tag(key, val)
        if problem:
            raise UsageError(problem)
