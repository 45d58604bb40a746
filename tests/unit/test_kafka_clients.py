"""Kafka client configuration comes from one function, for every client and the faust app."""

import ssl

import faust
import pytest

from pipeline.kafka_clients import client_config, faust_broker_options, group_options
from pipeline.settings import ConfigError, Settings, load_settings


def test_plaintext_names_the_client_by_role():
    s = Settings(kafka_bootstrap="k1:9092,k2:9092", kafka_client_id="shop")
    assert client_config(s, "decoder") == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "client_id": "shop-decoder",
        "security_protocol": "PLAINTEXT",
    }
    options = faust_broker_options(s)
    assert options["broker"] == ["kafka://k1:9092", "kafka://k2:9092"]
    assert "broker_credentials" not in options


def test_sasl_ssl_gives_credentials_and_a_tls_context_to_every_client():
    s = load_settings(
        env={
            "ERRORSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "ERRORSTREAM_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "ERRORSTREAM_KAFKA_SASL_USERNAME": "app",
            "ERRORSTREAM_KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    config = client_config(s, "sink")
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("app", "s3cret")
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    credentials = faust_broker_options(s)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert s.masked()["kafka_sasl_password"] != "s3cret"


def test_sasl_without_credentials_or_a_missing_ca_file_is_a_config_error():
    with pytest.raises(ConfigError, match="kafka_sasl_username, kafka_sasl_password"):
        load_settings(env={"ERRORSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    with pytest.raises(ConfigError, match="kafka_ssl_cafile"):
        load_settings(
            env={
                "ERRORSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                "ERRORSTREAM_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem",
            }
        )


def test_every_group_member_uses_the_same_session_timeout():
    # faust's own default is 60 s: a kill -9ed agent's partitions would wait a minute
    s = Settings()
    assert group_options(s) == {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 3_333}
    options = faust_broker_options(s)
    assert options["broker_session_timeout"] == 10.0
    assert options["broker_heartbeat_interval"] == pytest.approx(10.0 / 3)
    s = load_settings(env={"ERRORSTREAM_KAFKA_SESSION_TIMEOUT": "30"})
    assert group_options(s)["session_timeout_ms"] == 30_000
    assert faust_broker_options(s)["broker_session_timeout"] == 30.0
    with pytest.raises(ConfigError, match="kafka_session_timeout|KAFKA_SESSION_TIMEOUT"):
        load_settings(env={"ERRORSTREAM_KAFKA_SESSION_TIMEOUT": "1"})
