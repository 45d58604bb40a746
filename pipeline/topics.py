"""The topics of the pipeline, and their creation with the configured partition count."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.kafka_clients import client_config
from pipeline.settings import Settings


def pipeline_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_events,
        settings.topic_by_fingerprint,
        settings.topic_processed,
        settings.topic_alerts,
        settings.topic_dlq,
        settings.topic_control,
    ]


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create the pipeline's topics (or ``topics``) that do not exist yet; returns the ones
    created."""
    admin = AIOKafkaAdminClient(**client_config(settings, "topics"))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = pipeline_topics(settings) if topics is None else topics
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [
                NewTopic(
                    t,
                    num_partitions=settings.partitions,
                    replication_factor=settings.replication_factor,
                )
                for t in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another worker created them first
        return missing
    finally:
        await admin.close()
