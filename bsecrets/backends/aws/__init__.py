"""The AWS Secrets Manager backend: one environment's secrets under a name prefix,
encrypted with the environment's KMS key.

    settings.py  what an environment is configured with (no boto3 needed)
    versions.py  bsecrets version numbers <-> AWS version ids, values, author tags
    errors.py    botocore errors -> bsecrets errors, each naming the AWS error code
    call_record.py  what one call's attempts did (for errors.py), BudgetSpent
    attempts.py  botocore's attempts held to the time budget, recorded per call
    clients.py   botocore clients, retries and timeouts, role assumption and its cache
    api.py       the AWS calls, each timed and translated
    writes.py    put: create, or write a version then move AWSCURRENT (compare-and-swap)
    adapter.py   AWSAdapter, the SecretBackend
    policy.py    the IAM policy that confines a principal to one environment

Importing this package is cheap: botocore is imported when a client is built.
See docs/backends/aws.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bsecrets.backends.aws.adapter import AWSAdapter
from bsecrets.backends.aws.settings import AwsSettings

if TYPE_CHECKING:
    from bsecrets.backends.registry import BackendContext
    from bsecrets.config.profile import EnvironmentConfig


def from_config(config: EnvironmentConfig, context: BackendContext) -> AWSAdapter:
    """The adapter of one ``backend: aws`` environment; UsageError (exit 2) if it
    cannot be used as configured (no region, a prefix AWS would reject). Warns
    (context.warn) when an endpoint is plain http:// to a host that is not loopback."""
    settings = AwsSettings.resolve(config, context.environ)
    context.check_cleartext(config, settings.endpoint_sources(context.environ))
    return AWSAdapter(settings, context)
