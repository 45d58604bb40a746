"""Pure rendering of everything a local KRaft broker needs on disk.

No I/O here: the POM that fetches the jars, ``server.properties``, the logging config, and the
cluster id are plain functions of their inputs, so they are unit-tested without Java or Maven.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

DEFAULT_VERSION = "3.9.2"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_HEAP = "512m"
HOST = "127.0.0.1"

# Logging backends (exactly one goes into the POM; Kafka's own POM carries none).
RELOAD4J_BINDING = (
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
LOG4J2_VERSION = "2.24.3"
LOG4J2_BINDING = (
    # log4j-slf4j-impl, not log4j-slf4j2-impl: Kafka stays on SLF4J 1.7.
    ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J2_VERSION),
    ("org.apache.logging.log4j", "log4j-api", LOG4J2_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J2_VERSION),
)
EXCLUSIONS = (("ch.qos.logback", "*"), ("log4j", "log4j"), ("org.slf4j", "slf4j-log4j12"))

# Small enough for a 512 MiB heap, large enough for faust's compacted changelog topics.
LOG_CLEANER_DEDUPE_BUFFER_BYTES = 32 * 1024 * 1024
LOG_RETENTION_CHECK_INTERVAL_MS = 60_000
BROKER_HEARTBEAT_INTERVAL_MS = 500
BROKER_SESSION_TIMEOUT_MS = 4_000  # 8 missed heartbeats: no fencing under CI load


def major_version(version: str) -> int:
    """``"3.9.2"`` → 3. Raises ValueError on something that is not a Kafka version."""
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise ValueError(f"not a Kafka version: {version!r} (expected e.g. 3.9.2 or 4.0.0)")
    return int(head)


def uses_log4j2(version: str) -> bool:
    """Kafka 4.x logs through Log4j 2; 3.x through reload4j (Log4j 1 API)."""
    return major_version(version) >= 4


def logging_binding(version: str) -> tuple[tuple[str, str, str], ...]:
    return LOG4J2_BINDING if uses_log4j2(version) else RELOAD4J_BINDING


def new_cluster_id() -> str:
    """A KRaft cluster id: 22 chars of URL-safe base64 of a random UUID, not starting with '-'.

    Same rule as Kafka's ``Uuid.randomUuid()``: ids starting with '-' are rejected because they
    read as command-line flags.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def is_valid_cluster_id(cid: str) -> bool:
    if len(cid) != 22 or cid.startswith("-"):
        return False
    try:
        return len(base64.urlsafe_b64decode(cid + "==")) == 16
    except ValueError:
        return False


def _dependency_xml(group: str, artifact: str, version: str, exclusions: str = "") -> str:
    return (
        "    <dependency>\n"
        f"      <groupId>{escape(group)}</groupId>\n"
        f"      <artifactId>{escape(artifact)}</artifactId>\n"
        f"      <version>{escape(version)}</version>\n"
        f"{exclusions}"
        "    </dependency>\n"
    )


def render_pom(version: str) -> str:
    """A throwaway POM whose runtime dependencies are the broker's classpath."""
    major_version(version)  # validate early
    exclusions = (
        "      <exclusions>\n"
        + "".join(
            f"        <exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId></exclusion>\n"
            for g, a in EXCLUSIONS
        )
        + "      </exclusions>\n"
    )
    deps = _dependency_xml("org.apache.kafka", "kafka_2.13", version, exclusions)
    deps += "".join(_dependency_xml(g, a, v) for g, a, v in logging_binding(version))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0"\n'
        '         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 '
        'http://maven.apache.org/xsd/maven-4.0.0.xsd">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>errorstream.local</groupId>\n"
        f"  <artifactId>kafka-broker-classpath-{escape(version)}</artifactId>\n"
        "  <version>0</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n"
        f"{deps}"
        "  </dependencies>\n"
        "</project>\n"
    )


@dataclass(frozen=True)
class BrokerConfig:
    """What varies between local brokers; everything else is fixed for one node on loopback."""

    data_dir: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    host: str = HOST
    node_id: int = 1
    # (user, password) pairs: the client listener then takes SASL_PLAINTEXT with PLAIN, and
    # the first pair is the broker's own identity between its listeners
    sasl_users: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("port", "controller_port"):
            value = getattr(self, name)
            if not 0 < value < 65536:
                raise ValueError(f"{name} must be 1-65535, got {value}")
        if self.port == self.controller_port:
            raise ValueError(f"port and controller_port must differ (both {self.port})")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def _sasl_properties(cfg: BrokerConfig) -> dict[str, str]:
    if not cfg.sasl_users:
        return {}
    for user, password in cfg.sasl_users:
        if not user.isidentifier() or '"' in password or "\\" in password:
            raise ValueError(f"sasl_users: unusable user name or password for {user!r}")
    own_user, own_password = cfg.sasl_users[0]
    users = " ".join(f'user_{u}="{p}"' for u, p in cfg.sasl_users)
    return {
        "listeners": f"SASL_PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:{cfg.controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{cfg.host}:{cfg.port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{own_user}" password="{own_password}" {users};'
        ),
    }


def server_properties(cfg: BrokerConfig) -> dict[str, str]:
    """The broker's settings as an ordered mapping (rendered by ``render_server_properties``)."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(cfg.node_id),
        "controller.quorum.voters": f"{cfg.node_id}@{cfg.host}:{cfg.controller_port}",
        "listeners": f"PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:{cfg.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{cfg.host}:{cfg.port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cfg.data_dir),
        # Defaults want RF 3 and 50 partitions for internal topics: one node has one replica.
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        # Consumers join at once instead of after the default 3 s.
        "group.initial.rebalance.delay.ms": "0",
        # A restarted node re-registers only once its previous session expires (Kafka 4.x:
        # DUPLICATE_BROKER_REGISTRATION until then): 9 s by default made `down` + `up` take 12 s.
        "broker.heartbeat.interval.ms": str(BROKER_HEARTBEAT_INTERVAL_MS),
        "broker.session.timeout.ms": str(BROKER_SESSION_TIMEOUT_MS),
        # faust tables use compacted changelogs: keep the cleaner, with a heap-friendly buffer.
        "log.cleaner.enable": "true",
        "log.cleaner.dedupe.buffer.size": str(LOG_CLEANER_DEDUPE_BUFFER_BYTES),
        "log.retention.check.interval.ms": str(LOG_RETENTION_CHECK_INTERVAL_MS),
        **_sasl_properties(cfg),
    }


def render_server_properties(cfg: BrokerConfig) -> str:
    lines = ["# Written by pipeline.kafka_local; regenerated on every start."]
    lines += [f"{key}={value}" for key, value in server_properties(cfg).items()]
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Minimal Java properties reader (key=value lines, '#' comments) for files we wrote."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


LOG4J1_PROPERTIES = """\
# Written by pipeline.kafka_local: everything to stdout, which the launcher sends to broker.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.kafka.log.LogCleaner=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
"""

LOG4J2_PROPERTIES = """\
# Written by pipeline.kafka_local: everything to stdout, which the launcher sends to broker.log.
status = warn
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
"""


def logging_config(version: str) -> tuple[str, str, str]:
    """(file name, file content, JVM system property name) for this Kafka version."""
    if uses_log4j2(version):
        return "log4j2.properties", LOG4J2_PROPERTIES, "log4j2.configurationFile"
    return "log4j.properties", LOG4J1_PROPERTIES, "log4j.configuration"


def logging_jvm_flag(version: str, path: Path) -> str:
    _, _, prop = logging_config(version)
    # Log4j 1 wants a URL; Log4j 2 accepts a path or URL.
    value = path.resolve().as_uri() if prop == "log4j.configuration" else str(path.resolve())
    return f"-D{prop}={value}"


def jvm_flags(heap: str) -> list[str]:
    return [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
