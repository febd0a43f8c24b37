"""The TracerProvider the environment asks for: its exporters, its resource, and a
flush at exit (a command line lives for a second; a batch not flushed is lost).

* ``OTEL_TRACES_EXPORTER``: ``otlp`` (the default, also with ``BSECRETS_OTEL=1`` alone),
  ``console`` (spans as JSON on stderr: stdout is the command's output), or several,
  comma-separated. No console fallback when OTLP can not be used: a warning instead.
* OTLP: over HTTP (``http/protobuf``, the ``otel`` extra), or gRPC when
  ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc`` and its exporter is installed. The
  exporters read their endpoint, headers, timeout and certificates from the process's
  ``OTEL_EXPORTER_OTLP_*`` variables themselves; the batch processor its ``OTEL_BSP_*``.
  One difference: without ``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT`` an export gives up
  after 2 s, not 10: a collector that is down must not hold every command's exit.
* A failed export is one ``warn`` line per process, not the SDK's log records (when
  the application has set up no logging of its own).
* Resource: ``OTEL_RESOURCE_ATTRIBUTES``, ``service.name`` from ``OTEL_SERVICE_NAME``
  (default ``bsecrets``), ``service.version`` bsecrets' version.

Imported only when traces are asked for (``bsecrets/tracing/__init__.py``).
"""

from __future__ import annotations

import atexit
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from bsecrets import __version__
from bsecrets.tracing import EXTRA

EXPORT_TIMEOUT_S = 2.0  # when OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT does not say
_TIMEOUTS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
_OTLP_MODULES = {
    "http/protobuf": ("opentelemetry.exporter.otlp.proto.http.trace_exporter", EXTRA),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "pip install opentelemetry-exporter-otlp-proto-grpc",
    ),
}


def from_environment(
    environ: Mapping[str, str], warn: Callable[[str], None]
) -> TracerProvider | None:
    """The provider, its span processors added and its flush at exit registered; None
    (after a warning) when none of the exporters asked for can be made."""
    exporters = [e for e in (_exporter(n, environ, warn) for n in exporter_names(environ)) if e]
    if not exporters:
        return None
    _quiet_logs(warn)
    provider = TracerProvider(resource=resource(environ))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    atexit.register(provider.shutdown)  # flushes what the batches still hold
    return provider


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    text = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    return [name for name in (part.strip() for part in text.split(",")) if name != "none"]


def _exporter(
    name: str, environ: Mapping[str, str], warn: Callable[[str], None]
) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if name != "otlp":
        warn(f"OTEL_TRACES_EXPORTER={name} is not supported (otlp, console, none): no traces")
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _OTLP_MODULES:
        warn(f"OTLP protocol '{protocol}' is not supported (http/protobuf, grpc): no traces")
        return None
    module_name, install = _OTLP_MODULES[protocol]
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        warn(f"traces over OTLP ({protocol}) need its exporter: {install}")
        return None
    timeout = None if any(environ.get(name) for name in _TIMEOUTS) else EXPORT_TIMEOUT_S
    exporter: SpanExporter = module.OTLPSpanExporter(timeout=timeout)
    return exporter


def resource(environ: Mapping[str, str]) -> Resource:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, percent-encoded), then
    ``OTEL_SERVICE_NAME``, else ``service.name=bsecrets``."""
    attributes: dict[str, Any] = {}
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            attributes[unquote(key.strip())] = unquote(value.strip())
    service = environ.get("OTEL_SERVICE_NAME", "").strip()
    attributes["service.name"] = service or attributes.get("service.name") or "bsecrets"
    attributes.setdefault("service.version", __version__)
    return Resource.create(attributes)


class _OneWarning(logging.Handler):
    """The SDK's warnings and errors (an export that failed, retried, timed out): one
    ``warn`` line, worded here (a record may carry the endpoint's URL)."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.warn = warn
        self.said = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.said:
            self.said = True
            self.warn(
                "OpenTelemetry could not export every trace (is the collector at "
                "OTEL_EXPORTER_OTLP_ENDPOINT up?); the command itself is not affected"
            )


def _quiet_logs(warn: Callable[[str], None]) -> None:
    """Route opentelemetry's log records to one warning, unless logging is set up."""
    logger = logging.getLogger("opentelemetry")
    if logger.handlers or logging.getLogger().handlers:
        return
    logger.addHandler(_OneWarning(warn))
    logger.propagate = False
