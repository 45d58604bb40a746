"""A real single-node KRaft Apache Kafka broker without Docker: jars from Maven Central, one JVM.

    ensure_kafka(version, cache_dir)   mvn → cache_dir/<version>/lib (first run only)
    KafkaBroker(home, port, ...)       start() → wait_ready() → stop(); status()
    wait_for_kafka(bootstrap, timeout) metadata round-trip or KafkaUnavailable
    register(subparsers)               `errorstream kafka up|down|status`

Why each setting is what it is: the comments in config.py and the team's kafka-local doc.
"""

from .broker import BrokerStatus, KafkaBroker, free_ports, port_is_free, start_on_free_ports
from .cli import register
from .config import DEFAULT_CONTROLLER_PORT, DEFAULT_PORT, DEFAULT_VERSION
from .download import default_cache_dir, ensure_kafka
from .errors import (
    BrokerStartError,
    KafkaLocalError,
    KafkaSetupError,
    KafkaUnavailable,
    PortInUse,
)
from .readiness import wait_for_kafka, wait_for_kafka_async

__all__ = [
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_PORT",
    "DEFAULT_VERSION",
    "BrokerStartError",
    "BrokerStatus",
    "KafkaBroker",
    "KafkaLocalError",
    "KafkaSetupError",
    "KafkaUnavailable",
    "PortInUse",
    "default_cache_dir",
    "ensure_kafka",
    "free_ports",
    "port_is_free",
    "register",
    "start_on_free_ports",
    "wait_for_kafka",
    "wait_for_kafka_async",
]
