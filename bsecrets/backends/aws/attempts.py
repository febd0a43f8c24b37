"""botocore's attempts, held to the operation's time budget (backends/budget.py).

botocore fixes a client's connect and read timeouts when the client is built,
and its retry modes know nothing of a deadline. Two hooks on each client fix
that, and record what a script needs to know about a failed write:

* ``before-send`` (every attempt, after adaptive mode's rate limiter): no
  attempt starts once the budget is spent (BudgetSpent), and the attempt's
  timeouts are cut to what is left of it.
* ``needs-retry`` (first at the service's level, before botocore's own retry
  handler, which it can veto by answering False): no retry whose longest
  backoff would end past the deadline, and no retry of a request that is not
  idempotent once an attempt may have reached AWS (a read timeout, a closed
  connection, a 5xx other than throttling or 503): AWS may have applied it,
  and a second CreateSecret or UpdateSecretVersionStage would then fail for
  the wrong reason. Such a failure is reported as such instead.

Each call's record (CallRecord, call_record.py) says how many attempts were made
and whether one may have reached AWS, which decides a write's ``applied``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bsecrets.backends.aws.call_record import BudgetSpent, CallRecord
from bsecrets.backends.aws.errors import THROTTLED
from bsecrets.backends.aws.settings import CONNECT_TIMEOUT, READ_TIMEOUT

if TYPE_CHECKING:
    from bsecrets.backends.budget import Budget

# AWS operations that change something, and those that may not be sent twice.
WRITES = frozenset(
    {
        "CreateSecret",
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "TagResource",
        "UntagResource",
        "UpdateSecret",
        "DeleteSecret",
        "RestoreSecret",
    }
)
NOT_IDEMPOTENT = frozenset({"CreateSecret", "UpdateSecretVersionStage", "DeleteSecret"})
# Answers that mean AWS did not act on the request (it is safe to send again).
NOT_ACTED_ON = THROTTLED | frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
MIN_ATTEMPT_S = 0.1  # a retry with less time than this left is not worth starting
MAX_BACKOFF_S = 20.0  # botocore's standard and adaptive modes
RETRY_AFTER_EXTRA_S = 5.0  # what an x-amz-retry-after header may add to a backoff


class AttemptGuard:
    """Hooks botocore clients to one Budget and records the call in progress."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.record = CallRecord()

    def begin(self) -> CallRecord:
        self.record = CallRecord()
        return self.record

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        events.register_first(f"needs-retry.{service}", self._needs_retry)
        events.register_last("before-send", lambda **kw: self._before_send(client, **kw))

    def _before_send(self, client: Any, request: Any = None, **_: Any) -> None:
        remaining = self.budget.remaining()
        if remaining <= 0:
            raise BudgetSpent()
        self.record.attempts += 1
        if request is not None:
            _cap_timeouts(
                client, request.url, min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining)
            )

    def _needs_retry(
        self,
        attempts: int = 1,
        response: Any = None,
        caught_exception: Any = None,
        operation: Any = None,
        **_: Any,
    ) -> bool | None:
        """False: no retry (botocore raises the attempt's error); None: botocore decides."""
        record = self.record
        record.operation = getattr(operation, "name", "") or record.operation
        headers: dict[str, str] = {}
        if isinstance(caught_exception, BudgetSpent):
            record.out_of_time = True
            return False
        if caught_exception is not None:
            if _may_have_arrived(caught_exception):
                record.may_have_arrived = True
        elif response is not None:
            http, parsed = response
            status = int(getattr(http, "status_code", 0) or 0)
            if status < 300:
                return None
            headers = dict(getattr(http, "headers", {}) or {})
            code = str((parsed or {}).get("Error", {}).get("Code") or "")
            if status >= 500 and status != 503 and code not in NOT_ACTED_ON:
                record.may_have_arrived = True
        if record.may_have_arrived and record.operation in NOT_IDEMPOTENT:
            return False
        longest = min(2.0 ** (attempts - 1), MAX_BACKOFF_S)
        if any(k.lower() == "x-amz-retry-after" for k in headers):
            longest += RETRY_AFTER_EXTRA_S
        if self.budget.remaining() < longest + MIN_ATTEMPT_S:
            record.out_of_time = True
            return False
        return None


def _may_have_arrived(exc: BaseException) -> bool:
    """Whether a failed attempt may have reached AWS (a write may then be applied)."""
    import botocore.exceptions as bx

    never_sent = (
        bx.EndpointConnectionError,
        bx.ConnectTimeoutError,
        bx.NoCredentialsError,
        bx.ParamValidationError,
    )
    return not isinstance(exc, never_sent)


def _cap_timeouts(client: Any, url: str, connect: float, read: float) -> None:
    """This attempt's timeouts: urllib3 reads them from the connection pool botocore
    sends through. A botocore without these internals keeps the client's own
    timeouts (3 s, 4 s), and the budget still stops retries and new attempts."""
    import urllib3

    try:
        session = client._endpoint.http_session
        proxy = session._proxy_config.proxy_url_for(url)
        pool = session._get_connection_manager(url, proxy).connection_from_url(url)
    except AttributeError:
        return
    pool.timeout = urllib3.Timeout(connect=connect, read=read)
