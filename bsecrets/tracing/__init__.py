"""OpenTelemetry traces of the audited operation path (docs/observability.md).

Off unless asked for: ``BSECRETS_OTEL=1``, or the standard variables asking for an
exporter (``OTEL_TRACES_EXPORTER`` other than ``none``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); never with ``OTEL_SDK_DISABLED=true`` or
``BSECRETS_OTEL=0``. This module is cheap to import (the ``get`` path does): opentelemetry
loads only once traces are asked for, from the modules beside it:

* ``provider.py``: the TracerProvider from the environment (exporter, resource, flushed
  at exit);
* ``operations.py``: a span per audited operation (an observer of the AuditLogger);
* ``calls.py``: a child span per HTTP request to Vault or AWS.

Off, a backend's seam costs one call of :func:`active`. Tests give their own provider
(an in-memory exporter) with :func:`install`.
"""

from __future__ import annotations

import _thread  # not threading: importing it costs a command ~1 ms
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bsecrets import __version__

if TYPE_CHECKING:  # the observers' type only: a command without traces
    from bsecrets.observing import OperationObserver

EXTRA = "pip install 'bsecrets[otel]'"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

_tracer: Any = None  # opentelemetry's Tracer once traces are on in this process
_provider: Any = None  # and its TracerProvider
_tried = False  # the environment's provider was tried (and warned about) once
_setting_up = _thread.allocate_lock()


def requested(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for traces (dictionary look-ups only)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    own = environ.get("BSECRETS_OTEL", "").strip().lower()  # settings.ENV_OTEL: same layer
    if own in _FALSE:
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        own in _TRUE
        or exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def active() -> bool:
    """Whether spans are being made in this process: the backends' seams ask first."""
    return _tracer is not None


def install(provider: Any) -> None:
    """Use ``provider`` (an opentelemetry TracerProvider) for this process's spans
    instead of one built from the environment; ``None`` turns traces off again.
    Traces are still made only where the environment asks for them (tests)."""
    global _tracer, _provider, _tried
    if provider is None:
        _tracer, _provider, _tried = None, None, False
        return
    _tracer, _provider, _tried = provider.get_tracer("bsecrets", __version__), provider, True


def flush(timeout_s: float = 2.0) -> None:
    """Send the spans still batched now: before the process is replaced (``exec``
    without masking), when the flush at exit will not run."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def observers_from(
    environ: Mapping[str, str], warn: Callable[[str], None]
) -> list[OperationObserver]:
    """The trace observer ``environ`` asks for (none when it asks for no traces).

    Asked for without opentelemetry installed, or with an exporter that can not be
    made: one ``warn`` line per process, and the command goes on untraced."""
    global _tried
    if not requested(environ):
        return []
    with _setting_up:  # the server's first requests may come together
        if _tracer is None and not _tried:
            _tried = True
            try:
                # opentelemetry loads here, only when traces are asked for (a seam)
                from bsecrets.tracing.provider import from_environment
            except ImportError:
                warn(f"traces were asked for but opentelemetry is not installed: {EXTRA}")
                return []
            provider = from_environment(environ, warn)
            if provider is not None:
                install(provider)
    if _tracer is None:
        return []
    from bsecrets.tracing.operations import OperationSpans  # loads opentelemetry (a seam)

    return [OperationSpans(_tracer)]


class Lineage:
    """Where one client's request spans hang when a request runs in a worker thread,
    whose context is empty: under the operation its last request hung under, while
    that operation lasts (``calls.py``). Holds nothing while traces are off."""

    __slots__ = ("context",)

    def __init__(self) -> None:
        self.context: Any = None


def vault_request(
    method: str, path: str, mount: str, address: str, kwargs: dict[str, Any], lineage: Lineage
) -> contextlib.AbstractContextManager[Any]:
    """A span around one request hvac sends to Vault (``backends/vault/transport.py``):
    its status code comes from a response hook added to ``kwargs``."""
    if _tracer is None:
        return contextlib.nullcontext()
    from bsecrets.tracing.calls import RequestSpan, vault_call  # loads opentelemetry (a seam)

    return RequestSpan(
        _tracer, "vault", method.upper(), vault_call(method, path, mount), address, kwargs, lineage
    )


def attach_botocore(client: Any) -> None:
    """A span per HTTP request ``client`` (a botocore client) sends, when traces are on
    (``backends/aws/clients.py``)."""
    if _tracer is None:
        return
    from bsecrets.tracing.calls import BotocoreSpans  # loads opentelemetry (a seam)

    BotocoreSpans(_tracer, client).attach()
