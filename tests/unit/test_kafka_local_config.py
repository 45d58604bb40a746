"""What the local broker writes to disk: server.properties, cluster id, POM, logging config."""

from __future__ import annotations

import argparse
import base64
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.kafka_local import register
from pipeline.kafka_local.cli import main
from pipeline.kafka_local.config import (
    BrokerConfig,
    is_valid_cluster_id,
    jvm_flags,
    logging_config,
    logging_jvm_flag,
    new_cluster_id,
    parse_properties,
    render_pom,
    render_server_properties,
)

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def rendered(**overrides: object) -> dict[str, str]:
    cfg = BrokerConfig(data_dir=Path("/tmp/k/data"), **overrides)  # type: ignore[arg-type]
    return parse_properties(render_server_properties(cfg))


def test_server_properties_for_one_node_on_loopback() -> None:
    props = rendered(port=19092, controller_port=19093)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == "/tmp/k/data"


def test_server_properties_fit_a_single_small_node() -> None:
    props = rendered()
    assert {k: props[k] for k in props if k.endswith("replication.factor")} == {
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
    }
    assert props["num.partitions"] == "1"
    assert props["offsets.topic.num.partitions"] == "1"
    assert props["transaction.state.log.num.partitions"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"
    # faust changelogs are compacted: the cleaner stays on, with a buffer that fits 512 MiB heap.
    assert props["log.cleaner.enable"] == "true"
    assert int(props["log.cleaner.dedupe.buffer.size"]) == 32 * 1024 * 1024
    assert 10_000 <= int(props["log.retention.check.interval.ms"]) <= 300_000
    # A restarted broker re-registers quickly, yet a busy CI box does not fence it.
    heartbeat, session = (
        int(props["broker.heartbeat.interval.ms"]),
        int(props["broker.session.timeout.ms"]),
    )
    assert session >= 6 * heartbeat and session <= 9_000


def test_server_properties_default_ports() -> None:
    props = rendered()
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"


@pytest.mark.parametrize(("port", "controller_port"), [(9092, 9092), (0, 9093), (9092, 70000)])
def test_broker_config_rejects_bad_ports(port: int, controller_port: int) -> None:
    with pytest.raises(ValueError):
        BrokerConfig(data_dir=Path("/d"), port=port, controller_port=controller_port)


def test_cluster_ids_are_22_urlsafe_chars_never_starting_with_dash() -> None:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    ids = [new_cluster_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for cid in ids:
        assert len(cid) == 22
        assert set(cid) <= alphabet
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16  # a whole UUID, no padding
        assert is_valid_cluster_id(cid)


@pytest.mark.parametrize("bad", ["", "short", "-" + "A" * 21, "A" * 23, "A" * 21 + "="])
def test_invalid_cluster_ids_are_rejected(bad: str) -> None:
    assert not is_valid_cluster_id(bad)


def _dependencies(pom: str) -> dict[str, str]:
    root = ET.fromstring(pom)
    deps = root.findall("m:dependencies/m:dependency", POM_NS)
    return {
        f"{d.findtext('m:groupId', namespaces=POM_NS)}:{d.findtext('m:artifactId', namespaces=POM_NS)}": (
            d.findtext("m:version", namespaces=POM_NS) or ""
        )
        for d in deps
    }


def _exclusions(pom: str) -> set[str]:
    root = ET.fromstring(pom)
    return {
        f"{e.findtext('m:groupId', namespaces=POM_NS)}:{e.findtext('m:artifactId', namespaces=POM_NS)}"
        for e in root.iterfind(".//m:exclusion", POM_NS)
    }


def test_pom_for_3_9_uses_reload4j() -> None:
    pom = render_pom("3.9.2")
    assert _dependencies(pom) == {
        "org.apache.kafka:kafka_2.13": "3.9.2",
        "org.slf4j:slf4j-reload4j": "1.7.36",
        "ch.qos.reload4j:reload4j": "1.2.25",
    }
    assert _exclusions(pom) == {"ch.qos.logback:*", "log4j:log4j", "org.slf4j:slf4j-log4j12"}


def test_pom_for_4_0_uses_log4j2_with_the_slf4j_1_binding() -> None:
    pom = render_pom("4.0.0")
    assert _dependencies(pom) == {
        "org.apache.kafka:kafka_2.13": "4.0.0",
        "org.apache.logging.log4j:log4j-slf4j-impl": "2.24.3",
        "org.apache.logging.log4j:log4j-api": "2.24.3",
        "org.apache.logging.log4j:log4j-core": "2.24.3",
    }
    assert "log4j-slf4j2-impl" not in pom and "reload4j" not in pom
    assert _exclusions(pom) == {"ch.qos.logback:*", "log4j:log4j", "org.slf4j:slf4j-log4j12"}


@pytest.mark.parametrize("bad", ["latest", "", "v3.9.2"])
def test_pom_rejects_something_that_is_not_a_version(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Kafka version"):
        render_pom(bad)


def test_logging_config_follows_the_major_version(tmp_path: Path) -> None:
    name3, text3, prop3 = logging_config("3.9.2")
    name4, text4, prop4 = logging_config("4.0.0")
    assert (name3, prop3) == ("log4j.properties", "log4j.configuration")
    assert (name4, prop4) == ("log4j2.properties", "log4j2.configurationFile")
    assert "ConsoleAppender" in text3 and "type = Console" in text4
    assert logging_jvm_flag("3.9.2", tmp_path / "l.properties").startswith(
        "-Dlog4j.configuration=file:/"
    )
    assert logging_jvm_flag("4.0.0", tmp_path / "l2.properties") == (
        f"-Dlog4j2.configurationFile={tmp_path / 'l2.properties'}"
    )


def test_jvm_flags() -> None:
    assert jvm_flags("512m") == ["-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]


def test_register_adds_kafka_with_up_down_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRORSTREAM_KAFKA_PORT", "19092")
    monkeypatch.setenv("ERRORSTREAM_KAFKA_HOME", "/tmp/es-kafka-home")
    monkeypatch.delenv("ERRORSTREAM_KAFKA_CONTROLLER_PORT", raising=False)
    parser = argparse.ArgumentParser(prog="errorstream")
    register(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["kafka", "up"])
    assert (args.kafka_command, args.port, args.controller_port) == ("up", 19092, 9093)
    assert args.home == Path("/tmp/es-kafka-home")
    assert callable(args.func)

    args = parser.parse_args(["kafka", "status", "--port", "29092", "--version", "4.0.0"])
    assert (args.kafka_command, args.port, args.version) == ("status", 29092, "4.0.0")


def test_bad_port_in_env_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ERRORSTREAM_KAFKA_PORT", "nine")
    with pytest.raises(SystemExit) as exit_info:
        main(["status"])
    assert exit_info.value.code == 2
    assert "not a port number: 'nine'" in capsys.readouterr().err


def test_status_of_an_empty_home_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--home", str(tmp_path)]) == 3
    assert capsys.readouterr().out.startswith("Kafka not running")
