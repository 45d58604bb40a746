"""One place that turns the settings into Kafka client configuration: every consumer,
producer and admin client of every process (and the faust app of the agent role) is built
from ``client_config`` / ``faust_broker_options``, so bootstrap servers, client ids and
security (TLS, SASL PLAIN / SCRAM) are the same everywhere."""

from __future__ import annotations

import ssl
from typing import Any

from pipeline.settings import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)


def client_config(settings: Settings, role: str) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer`` / ``AIOKafkaProducer`` /
    ``AIOKafkaAdminClient``; ``role`` names the client (``client_id`` = prefix-role)."""
    s = settings
    config: dict[str, Any] = {
        "bootstrap_servers": s.kafka_bootstrap,
        "client_id": f"{s.kafka_client_id}-{role}",
        "security_protocol": s.kafka_security_protocol,
    }
    context = _ssl_context(s)
    if context is not None:
        config["ssl_context"] = context
    if s.kafka_security_protocol.startswith("SASL_"):
        config["sasl_mechanism"] = s.kafka_sasl_mechanism
        config["sasl_plain_username"] = s.kafka_sasl_username
        config["sasl_plain_password"] = s.kafka_sasl_password
    return config


def group_options(settings: Settings) -> dict[str, Any]:
    """``AIOKafkaConsumer`` keyword arguments of a consumer-group member: the session timeout
    after which a member that stopped heartbeating (``kill -9``) loses its partitions."""
    timeout_ms = int(settings.kafka_session_timeout * 1000)
    return {"session_timeout_ms": timeout_ms, "heartbeat_interval_ms": max(1000, timeout_ms // 3)}


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the same broker and security."""
    import faust

    s = settings
    options: dict[str, Any] = {
        "broker": [f"kafka://{server.strip()}" for server in s.kafka_bootstrap.split(",")],
        "broker_client_id": f"{s.kafka_client_id}-agent",
        # faust's default is 60 s: a killed agent's partitions would wait that long
        "broker_session_timeout": s.kafka_session_timeout,
        "broker_heartbeat_interval": max(1.0, s.kafka_session_timeout / 3),
    }
    context = _ssl_context(s)
    if s.kafka_security_protocol.startswith("SASL_"):
        options["broker_credentials"] = faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=s.kafka_sasl_password,
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options
