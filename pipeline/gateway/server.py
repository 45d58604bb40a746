"""The gateway's aiohttp app: Sentry's ingest endpoints and errorstream's own.

    POST /api/{project_id}/envelope/   Sentry envelope (event items published; others counted)
    POST /api/{project_id}/store/      one Sentry event (legacy)
    POST /v1/events                    schema v1 JSON object or JSON lines
    GET  /healthz /readyz /metrics     pipeline/health.py

    request ─ CORS ─ read body (wire cap) ─ decompress (cap) ─ auth (header / query key,
            else the envelope's dsn) ─ rate limit (events per key) ─ pipeline.gateway.ingest
            ─ Publisher.publish (acks=all) ─ 200 {"id": ...}

Every refusal is JSON ``{"detail": "..."}`` with the status of docs/gateway.md and is counted
under ``errorstream_gateway_rejects_total{reason}``; nothing refused reaches Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from pipeline.gateway import ingest
from pipeline.gateway.auth import AuthError, Keyring, key_from_auth_header, key_from_dsn
from pipeline.gateway.compression import BodyError, decompress
from pipeline.gateway.ingest import Batch, IngestLimits, Refused
from pipeline.gateway.limits import KeyRateLimiter
from pipeline.gateway.publisher import KafkaUnavailable, Publisher
from pipeline.gateway.scrub import GatewayScrubber
from pipeline.health import add_ops_routes
from pipeline.metrics import Metrics
from pipeline.sentry import service_name

log = logging.getLogger("errorstream.gateway")

CORS_ALLOW_HEADERS = (
    "x-sentry-auth, content-type, content-encoding, authorization, sentry-trace, baggage"
)
CORS_EXPOSE_HEADERS = "x-sentry-error, x-sentry-rate-limits, retry-after"


@dataclass(frozen=True)
class GatewayConfig:
    keyring: Keyring
    projects: dict[str, str]
    default_service: str = "project-{project_id}"
    max_body_bytes: int = 5 * 1024 * 1024
    max_decompressed_bytes: int = 20 * 1024 * 1024
    limits: IngestLimits = IngestLimits()
    rate: float = 1000.0
    burst: int = 2000
    cors_origins: frozenset[str] = frozenset()
    retry_after: int = 30
    scrub: bool = True

    @classmethod
    def from_settings(cls, s) -> GatewayConfig:
        from pipeline.gateway.auth import parse_projects

        return cls(
            keyring=Keyring.from_settings(s),
            projects=parse_projects(s.gateway_projects),
            default_service=s.gateway_default_service,
            max_body_bytes=s.gateway_max_body_bytes,
            max_decompressed_bytes=s.gateway_max_decompressed_bytes,
            limits=IngestLimits(
                s.gateway_max_event_bytes, s.gateway_max_json_depth, s.gateway_max_field_chars
            ),
            rate=s.gateway_rate_limit,
            burst=s.gateway_rate_burst,
            cors_origins=frozenset(
                o.strip().rstrip("/") for o in s.gateway_cors_origins.split(",") if o.strip()
            ),
            retry_after=s.gateway_retry_after,
            scrub=bool(s.gateway_scrub),
        )


class InFlight:
    """Requests being handled now, so SIGTERM can wait for them (aiohttp's own shutdown
    stops reading request bodies that are still arriving)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False


def _reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _endpoint(request: web.Request) -> str:
    if request.path in ("/healthz", "/readyz", "/metrics"):
        return "ops"
    name = getattr(request.match_info.route, "name", None)
    return (name or "other").removesuffix("_slashless")


def build_gateway(
    config: GatewayConfig,
    publisher: Publisher,
    metrics: Metrics,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    draining: Callable[[], bool] = lambda: False,
    inflight: InFlight | None = None,
) -> web.Application:
    limiter = KeyRateLimiter(config.rate, config.burst)
    scrubber = GatewayScrubber() if config.scrub else None
    m = metrics
    inflight = inflight if inflight is not None else InFlight()
    # labelled children looked up once, not on every request (labels() takes a lock)
    wire_bytes = m.gateway_bytes.labels("wire")
    decompressed_bytes = m.gateway_bytes.labels("decompressed")
    requests_by: dict[tuple[str, int], Any] = {}
    items_by: dict[str, Any] = {}

    def count_request(endpoint: str, status: int) -> None:
        child = requests_by.get((endpoint, status))
        if child is None:
            child = requests_by[(endpoint, status)] = m.gateway_requests.labels(
                endpoint, str(status)
            )
        child.inc()

    def count_items(item_type: str, count: int) -> None:
        child = items_by.get(item_type)
        if child is None:
            child = items_by[item_type] = m.gateway_items.labels(item_type)
        child.inc(count)

    def cors_origin(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if not origin or not config.cors_origins:
            return None
        if "*" in config.cors_origins or origin.rstrip("/") in config.cors_origins:
            return origin
        return None

    @web.middleware
    async def outer(request: web.Request, handler):
        endpoint = _endpoint(request)
        inflight.enter()
        try:
            response = await handler(request)
        except Refused as exc:
            m.gateway_rejects.labels(exc.reason).inc()
            response = _reply({"detail": exc.detail}, exc.status, exc.headers)
        except web.HTTPException as exc:  # 404 / 405 from the router
            response = _reply({"detail": exc.reason}, exc.status)
        except Exception:
            log.exception("gateway: unexpected error on %s", request.path)
            m.gateway_rejects.labels("internal").inc()
            response = _reply({"detail": "internal error"}, 500)
        finally:
            inflight.leave()
        origin = cors_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
            response.headers["Vary"] = "Origin"
        if endpoint != "ops":
            count_request(endpoint, response.status)
        return response

    async def read_body(request: web.Request) -> bytes:
        length = request.content_length
        cap = config.max_body_bytes
        if length is not None and length > cap:
            raise Refused(413, "too_large", f"body over {cap} bytes")
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise Refused(413, "too_large", f"body over {cap} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        wire_bytes.inc(len(body))
        try:
            body = decompress(
                body, request.headers.get("Content-Encoding", ""), config.max_decompressed_bytes
            )
        except BodyError as exc:
            status = 413 if exc.reason == "too_large_decompressed" else 400
            status = 415 if exc.reason == "unsupported_encoding" else status
            raise Refused(status, exc.reason, str(exc)) from None
        decompressed_bytes.inc(len(body))
        return body

    def given_key(request: web.Request) -> str | None:
        header = request.headers.get("X-Sentry-Auth")
        if header is None:
            auth = request.headers.get("Authorization", "")
            if auth[:7].lower() == "sentry ":
                header = auth
            elif auth[:7].lower() == "bearer ":
                return auth[7:].strip() or None
        if header is not None:
            return key_from_auth_header(header)
        return request.query.get("sentry_key") or None

    def authorize(project: str, key: str | None) -> None:
        try:
            config.keyring.check(project, key)
        except AuthError as exc:
            raise Refused(exc.status, exc.reason, exc.detail) from None

    def rate_limit(key: str, cost: int) -> None:
        limited = limiter.acquire(key, cost, clock())
        if limited is not None:
            raise Refused(429, "rate_limited", "rate limit exceeded", limited.headers())

    async def publish(batch: Batch, request: web.Request) -> web.Response:
        if batch.records:
            try:
                took = await publisher.publish(batch.records)
            except KafkaUnavailable as exc:
                log.warning("gateway: publish failed: %s", exc)
                raise Refused(
                    503,
                    "kafka_unavailable",
                    "temporarily unavailable",
                    {"Retry-After": str(config.retry_after)},
                ) from None
            m.gateway_publish_latency.observe(took)
            m.gateway_events_published.inc(len(batch.records))
        for item_type, count in batch.items.items():
            count_items(item_type, count)
        return _reply({"id": batch.reply_id} if batch.reply_id else {})

    def client_ip(request: web.Request) -> str | None:
        return request.remote

    async def envelope(request: web.Request) -> web.Response:
        project = request.match_info["project_id"]
        key = given_key(request)
        if key is not None:
            authorize(project, key)
        body = await read_body(request)
        env = ingest.parse(body)
        if key is None:
            dsn = env.headers.get("dsn")
            dsn_key, dsn_project = key_from_dsn(dsn) if isinstance(dsn, str) else (None, None)
            if dsn_key is not None and dsn_project != project:
                raise Refused(401, "auth_invalid", "the envelope's dsn names another project")
            key = dsn_key
            authorize(project, key)
        assert key is not None
        rate_limit(key, ingest.event_count(env))
        batch = ingest.from_envelope(
            env,
            service=service_name(project, config.projects, config.default_service),
            received_at=wall_clock(),
            limits=config.limits,
            scrubber=scrubber,
            client_ip=client_ip(request),
        )
        return await publish(batch, request)

    async def store(request: web.Request) -> web.Response:
        project = request.match_info["project_id"]
        key = given_key(request)
        authorize(project, key)
        assert key is not None
        body = await read_body(request)
        rate_limit(key, 1)
        batch = ingest.from_store(
            body,
            service=service_name(project, config.projects, config.default_service),
            received_at=wall_clock(),
            limits=config.limits,
            scrubber=scrubber,
            client_ip=client_ip(request),
        )
        return await publish(batch, request)

    async def v1_events(request: web.Request) -> web.Response:
        key = given_key(request)
        try:
            config.keyring.project_of(key)
        except AuthError as exc:
            raise Refused(exc.status, exc.reason, exc.detail) from None
        assert key is not None
        body = await read_body(request)
        batch = ingest.from_v1(body, limits=config.limits, scrubber=scrubber)
        rate_limit(key, len(batch.records))
        response = await publish(batch, request)
        return _reply({"ids": batch.event_ids}) if response.status == 200 else response

    async def preflight(request: web.Request) -> web.Response:
        if cors_origin(request) is None:
            raise Refused(403, "cors_origin", "origin not allowed")
        return web.Response(
            status=200,
            headers={
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "3600",
            },
        )

    app = web.Application(middlewares=[outer], client_max_size=config.max_body_bytes)
    r = app.router
    for slash in ("/", ""):  # SDKs send the slash; curl users often do not
        suffix = "" if slash else "_slashless"
        for kind, handler in (("envelope", envelope), ("store", store)):
            path = rf"/api/{{project_id:\d{{1,19}}}}/{kind}{slash}"
            r.add_post(path, handler, name=kind + suffix)
            r.add_route("OPTIONS", path, preflight, name=f"{kind}_preflight{suffix}")
    r.add_post("/v1/events", v1_events, name="v1")
    r.add_route("OPTIONS", "/v1/events", preflight, name="v1_preflight")

    def readiness() -> dict[str, bool]:
        return {"kafka": publisher.ready, "accepting": not draining()}

    add_ops_routes(r, m.registry, readiness)
    return app
