#!/usr/bin/env bash
# The step of action.yml (tested by tests/test_ci_install.py): install bsecrets from the
# action's own checkout (the version the workflow pinned with @ref), then append the
# environment's secrets to $GITHUB_ENV with 'export --format github-env', which
# registers every value line with ::add-mask:: first; it prints the masks and one
# summary line, never a value.
set -euo pipefail

fail() {
    printf 'error: %s\nhint: %s\n' "$1" "$2" >&2
    exit 2
}

[ -n "${INPUT_ENV:-}" ] || fail "the bsecrets action needs 'env'" "with: {env: prod}"
[ -n "${GITHUB_ENV:-}" ] || fail "GITHUB_ENV is not set" "this script is the step of action.yml in GitHub Actions"
if [ -z "${BSECRETS_TOKEN:-}${BSECRETS_PASSPHRASE:-}${BSECRETS_SESSION:-}" ]; then
    fail "no credential for bsecrets in the step's env" \
        "env: {BSECRETS_TOKEN: \${{ secrets.BSECRETS_TOKEN }}} (made with 'bsecrets token issue')"
fi
if [ "${INPUT_INSTALL:-true}" = "true" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "${GITHUB_ACTION_PATH:?}"
fi
args=(export -e "$INPUT_ENV" --format github-env)
if [ -n "${INPUT_ONLY:-}" ]; then
    args+=(--only "$INPUT_ONLY")
fi
if [ -n "${INPUT_PREFIX:-}" ]; then
    args+=(--prefix "$INPUT_PREFIX")
fi
exec bsecrets "${args[@]}"
