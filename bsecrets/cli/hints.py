"""The command line's hints: those that name a bsecrets command, option or
session variable, which no layer below the CLI may know about.

An error that carries a next step (``error.step``, a :class:`NextStep`) is
worded by its template in :data:`STEPS` (``str.format`` with the step's
arguments, and ``{hint}``: the error's own hint, for templates that extend
it). Else a hint given where the error was raised wins; else the hint of the
most specific class of the error in :data:`HINTS`; else the class's own
``default_hint`` (already in ``error.hint``), if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bsecrets.errors import (
    BsecretsError,
    NextStep,
    PrincipalUnknown,
    ProfileNotFound,
    SecondFactorRejected,
    SecretNotFound,
    SessionInvalid,
    TokenInvalid,
    VaultLocked,
    VaultNotFound,
    VersionConflict,
    VersionNotFound,
)

HINTS: Final[Mapping[type[BsecretsError], str]] = {
    SecretNotFound: "list what exists with 'bsecrets ls'",
    VersionNotFound: "list the versions with 'bsecrets history NAME'",
    ProfileNotFound: (
        "create one with 'bsecrets init', or point to it with --profile / BSECRETS_PROFILE"
    ),
    VaultNotFound: "create it with 'bsecrets init'",
    VaultLocked: (
        "run 'eval \"$(bsecrets unlock)\"', or set BSECRETS_SESSION, "
        "BSECRETS_PASSPHRASE or BSECRETS_PASSPHRASE_FILE"
    ),
    SessionInvalid: (
        "start a new session with 'eval \"$(bsecrets unlock)\"', or unset BSECRETS_SESSION"
    ),
    VersionConflict: "read the current version with 'bsecrets history NAME' and retry",
    PrincipalUnknown: "list them with 'bsecrets access principal ls'",
    TokenInvalid: (
        "ask the vault's owner for a token of this vault ('bsecrets token issue') and set "
        "it as BSECRETS_TOKEN"
    ),
    SecondFactorRejected: (
        "type the code your authenticator app shows now (BSECRETS_OTP); "
        "'bsecrets mfa status' shows failures and any lockout"
    ),
}


# NextStep.action -> its wording on the command line
STEPS: Final[Mapping[str, str]] = {
    # --- the vault file, the audit log, the backends ---
    # the audit log (audit/chain.py, keyring_anchor.py, local_log.py, witness.py)
    "give_anchor_as_printed": "give it as printed by 'bsecrets audit anchor': SEQ:64-HEX-DIGITS",
    "verify_audit_log_with_trusted_anchor": (
        "{hint}, then run 'bsecrets audit verify --anchor SEQ:HEX' with an anchor you trust"
    ),
    "verify_audit_log": "run 'bsecrets audit verify' to see what was changed",
    "verify_audit_log_before_archiving": "run 'bsecrets audit verify'; {hint}",
    "verify_audit_log_against_anchor": "{hint}: run 'bsecrets audit verify'",
    "verify_audit_log_for_other_changes": (
        "{hint}; 'bsecrets audit verify' shows what else changed"
    ),
    # the vault file (vaultfile/connection.py, session.py, unlock.py)
    "open_where_writable": (
        "open it once where it is writable (bsecrets ls), then it reads here too"
    ),
    "shorten_session": "use --ttl 7d or less",
    "unlock_where_keyring_is": (
        "this vault opens only with the OS keyring that 'init --keyring' used: "
        "run where it is available, or pass a session from there (BSECRETS_SESSION)"
    ),
    # protected environments and second factors (services/access.py, services/mfa.py)
    "protect_env": (
        "apply it with 'bsecrets env protect {env}' (enrol a second factor first: "
        "'bsecrets mfa enroll'), or drop 'protected: true' from the profile"
    ),
    "init_vault_for_access": (
        "run 'bsecrets init': protections and second factors live in the local vault"
    ),
    "ask_for_grant": (
        "ask the vault's owner: 'bsecrets access grant PRINCIPAL -e {env} --role ...'"
    ),
    "list_principals": "list them with 'bsecrets access principal ls'",
    "list_tokens": "list them with 'bsecrets token ls'",
    "rotate_immediate": "use --strategy immediate, graceful or blue-green (docs/rotation.md)",
    "resume_or_cancel_rotation": (
        "finish it with 'bsecrets rotate resume {id}', "
        "or drop it with 'bsecrets rotate cancel {id}'"
    ),
    "rotate_again": "start a new one with 'bsecrets rotate {name}'",
    "rotation_service_aws": (
        "'rotate schedule' configures AWS's own rotation (a Lambda); elsewhere 'bsecrets "
        "rotate NAME' with hooks does it"
    ),
    "rotate_without_value": "run 'bsecrets rotate {name} -e {env}' without a value",
    "every_days": "use --every 30d (whole days)",
    "rotate_blue_green": "rotate it first: 'bsecrets rotate {name} --strategy blue-green'",
    "rollback_instead": "to go back, 'bsecrets rollback {name} -e {env} --to N'",
    "rotation_status": "see 'bsecrets rotate status'",
    "promote_other_env": "promote between two environments: --from staging --to prod",
    "promote_mapping": (
        "name what goes in the profile (promote: {{{source}: {{{target}: {{names: [...]}}}}}}), "
        "with --map FILE, or with --only GLOB (docs/promotion.md)"
    ),
    "promote_never": "leave those names out of --only, or change the mapping's never: list",
    "promote_rename": "give each secret its own target name in rename:",
    "resume_or_abort_promotion": (
        "finish it with 'bsecrets promote --resume {id}', "
        "or undo it with 'bsecrets promote --abort {id}'"
    ),
    "promotion_log": "see 'bsecrets promote log'",
    "break_glass_as_principal": "request it as the principal who needs access (--as NAME)",
    "break_glass_custodian": "a custodian of '{env}' other than the requester approves it "
    "(see 'bsecrets break-glass status')",
    "break_glass_custodians": (
        "name 2 to 16 distinct custodians and a --threshold from 2 to their number"
    ),
    "break_glass_local_only": "break-glass applies to local environments",
    "break_glass_offline_words": (
        "pipe the share's words: 'bsecrets break-glass approve ID --offline-share < words.txt'"
    ),
    "break_glass_rekey": "re-key it first: 'bsecrets break-glass rekey -e {env}'",
    "break_glass_request_again": (
        "ask again: 'bsecrets break-glass request -e {env} --reason ... --ttl 1h'"
    ),
    "break_glass_review": (
        "an admin reviews it first: 'bsecrets break-glass review {id} --notes ...' "
        "(or requests with --override and a reason)"
    ),
    "break_glass_reviewer": "an admin of '{env}' other than the requester reviews it",
    "break_glass_setup": (
        "set it up: 'bsecrets break-glass setup -e {env} --custodians a,b,c --threshold 2'"
    ),
    "break_glass_status": "see 'bsecrets break-glass status'",
    "break_glass_ttl": "use --ttl 1m to 24h",
    "break_glass_wait": "wait for more custodians ('bsecrets break-glass status' shows who)",
    "abort_promotion": "finish the undo with 'bsecrets promote --abort {id}', then promote again",
    "promote_request": (
        "ask with 'bsecrets promote --from {source} --to {target} --request'; another "
        "admin runs 'bsecrets promote approve ID'"
    ),
    "promotion_approver": "an admin of '{env}' other than the requester approves it",
    "promote_request_again": (
        "ask again: 'bsecrets promote --from {source} --to {target} --request'"
    ),
    "give_rotation_value": (
        "give --generate password:32 (or hex:N, base64:N, uuid), --from-file F, or stdin; "
        "or set generate: in the profile's rotation policy"
    ),
    "generator_forms": "generators: password:N, hex:N, base64:N (N from 1 to 4096), uuid",
    "shorten_token_ttl": "use --ttl 30d or less",
    "token_role": "use --role read (or write)",
    "drop_as": "unset BSECRETS_AS (or drop --as): the token names its principal",
    "name_principal": "name it with --as NAME (or BSECRETS_AS)",
    "machine_public_key": (
        "make its key pair on the machine ('bsecrets access keygen -o FILE') and add it "
        "with --public-key FILE.pub, or issue a pipeline token ('bsecrets token issue')"
    ),
    "make_key_file": "make one with 'bsecrets access keygen -o FILE' (on the key's machine)",
    "give_public_key": "give the .pub file 'bsecrets access keygen' wrote (one line of base64)",
    "grant_first": "grant it first: 'bsecrets access grant {principal} -e {env} --role read'",
    "extend_or_issue_token": (
        "ask the vault's owner for a new one ('bsecrets token issue') or more time "
        "('bsecrets token extend ID --ttl 30m')"
    ),
    "give_reason": 'say why with --reason "..." (or BSECRETS_REASON)',
    "confirm_with_yes": 'add --yes to confirm (with --reason "...")',
    "enroll_mfa": "enrol one with 'bsecrets mfa enroll', then 'bsecrets mfa confirm'",
    "give_one_time_code": "set BSECRETS_OTP to the code your authenticator app shows now",
    "wait_for_next_code": "wait for the next code (a new one every 30 seconds) and retry",
    "clear_lockout": "wait, or ask an admin to run 'bsecrets mfa clear {principal}'",
    "wait_for_lockout": "wait until {until}: the owner's own lockout runs out, no one clears it",
    "replace_mfa": "to replace it, run 'bsecrets mfa enroll --replace' (asks a code of it)",
    "drop_protected_declaration": (
        "remove 'protected: true' from environment '{env}' in the profile first"
    ),
    # every backend (ports.py, backends/*)
    "restore_secret": "restore it with 'bsecrets restore {name}'",
    "restore_secret_in_env": "restore it with 'bsecrets restore {name} -e {env}'",
    "delete_without_recovery_window": (
        "--recovery-days applies to aws environments; elsewhere 'rm' keeps "
        "the secret until 'rm --purge'"
    ),
    # a put whose value was stored, not what came after it: {then} is the next step
    "do_not_repeat_put": (
        "do not repeat the put (a retry would store version {next_version}); {then}"
    ),
    # AWS (backends/aws/)
    "list_kept_versions": (
        "list the versions {store} still keeps with 'bsecrets history {name}'; {hint}"
    ),
    "list_secrets_in_env": "list what exists with 'bsecrets ls -e {env}'",
    "check_aws_policy": (
        "check the caller's IAM policy ('bsecrets aws policy -e {env}' prints what bsecrets "
        "needs) and the KMS key policy"
    ),
    "allow_aws_metadata_writes": (
        "{hint} ('bsecrets aws policy -e {env}' prints the policy), or put "
        "without --tag and --description"
    ),
    "rerun_with_debug": "rerun with BSECRETS_DEBUG=1 to see the details",
    "purge_at_once": "{hint}; to delete at once use 'bsecrets rm NAME --purge'",
    "check_history_of": "check with 'bsecrets history {name}'",
    # Vault (backends/vault/)
    "check_vault_policy": (
        "{hint}; 'bsecrets vault policy -e {env}' prints the policy bsecrets needs"
    ),
    "allow_vault_metadata_patch": (
        "{hint} ('bsecrets vault policy -e {env}' prints it), or put "
        "without --tag and --description"
    ),
    "check_history": "check 'bsecrets history NAME'",
    "write_new_version": "write a new version with 'bsecrets put {name}'",
    # --- configuration, formats, services ---
    # the profile's environments (config/edit.py)
    "free_environment_name": "pick another name, or remove it first: bsecrets env rm {name}",
    "add_environment_first": (
        "{hint}: add another first (bsecrets env add NAME --backend local), then remove this one"
    ),
    "choose_other_default_environment": (
        "make another one the default first: bsecrets env default {env}"
    ),
    # secrets as variables of a child process (config/envmap.py)
    "rename_or_select_colliding": "rename one of them, or pick one with --only",
    "list_secret_names": "list the names with 'bsecrets ls'",
    "rename_or_leave_out": "rename the secret, or leave it out with --only",
    "allow_keep_or_leave_out": (
        "allow it with --allow-override {variable}, keep the inherited value with "
        "--preserve-env {variable}, or leave it out with --only"
    ),
    "leave_out_or_render_to_file": (
        "leave it out with --only, or use 'bsecrets render' to write it to a file"
    ),
    # exec --env-file's lines (services/env_file.py)
    "allow_keep_or_drop_line": (
        "allow it with --allow-override {variable}, keep the inherited value with "
        "--preserve-env {variable}, or remove the line"
    ),
    # provision generators (config/generators.py), empty values (models.py)
    "give_value_or_allow_empty": (
        "give '{name}' a value or a generator, or pass --allow-empty; {hint}"
    ),
    "set_variable_or_allow_empty": "set {variable}, or pass --allow-empty; {hint}",
    "allow_empty_value": "{hint}; if an empty value is what you mean, pass --allow-empty",
    # a profile written by a newer bsecrets (config/parser.py)
    "upgrade_bsecrets": "{hint}: 'pip install --upgrade bsecrets'",
    # export formats (formats/codecs.py, services/transfer.py)
    "rename_one_or_export_by_name": (
        "rename one of them, or export with --format json or yaml (keyed by name)"
    ),
    "rename_or_export_as_json_or_yaml": (
        "{hint}; rename the secret, or export with --format json or yaml"
    ),
    "export_as_json_yaml_or_shell": (
        "export with --format json, yaml or shell (see docs/transfer.md)"
    ),
    "mount_as_json_or_yaml": "mount it with --mount-format json or yaml (see docs/exec.md)",
    "export_as_json_or_yaml": "export with --format json or yaml",
    "use_exec_in_ci_step": "use 'bsecrets exec' in the step instead",
    "read_value_raw": "read it with 'bsecrets get NAME --raw'",
    "drop_prefix_or_use_variable_format": (
        "drop --prefix, or use --format dotenv, shell or github-env"
    ),
    "rename_or_export_by_name": (
        "rename the secret, or export with --format json or yaml (keyed by name)"
    ),
    "allow_rename_or_export_by_name": (
        "allow it with --allow-override {variable}, rename the secret, "
        "or export with --format json or yaml (keyed by name)"
    ),
    "allow_empty_import": "pass --allow-empty to import empty values; {hint}",
    # the audit log (services/audit_ops.py, services/manager.py)
    "set_retention_or_give_cutoff": (
        "add 'audit: {{retention: 365d}}' to the profile, or give --before DATE"
    ),
    "init_local_vault": "run 'bsecrets init': the audit log lives in the local vault",
    # init (services/bootstrap.py)
    "use_or_extend_profile": (
        "use it as it is (add environments with 'bsecrets env add'), or pass "
        "--force to add the --env environments it lacks (nothing in it is dropped)"
    ),
    "fix_or_move_profile": (
        "init --force cannot tell which environments this profile holds, so it "
        "does not replace it: fix it, or move it away (mv {path} {path}.old) and run "
        "init again"
    ),
    "fix_profile_then_reinit": (
        "fix the profile: then 'bsecrets init --force' keeps every environment "
        "and adds the ones you name"
    ),
    "rerun_init_keeping_vault": "run 'bsecrets init --force' again: it keeps that vault",
    "wait_then_rerun_init": "wait for it to finish, then run 'bsecrets init' again",
}


def step_text(step: NextStep, hint: str | None = None) -> str:
    """``step`` worded for the command line (KeyError for an action without a template).
    Where the step's argument ``then`` names another action (what to do after it,
    e.g. ``do_not_repeat_put``), ``{then}`` is that action's text, worded with the
    same arguments and hint."""
    args = dict(step.args)
    then = args.pop("then", None)
    if isinstance(then, str):
        args["then"] = step_text(NextStep(then, **args), hint)
    return STEPS[step.action].format(hint=hint or "", **args)


def hint_for(error: BsecretsError) -> str | None:
    """The hint to show with ``error`` on the command line (see the module docstring)."""
    if error.step is not None:
        return step_text(error.step, error.hint)
    if error.hint is not None:
        return error.hint
    for base in type(error).__mro__:
        hint = HINTS.get(base)
        if hint is not None:
            return hint
    return None
