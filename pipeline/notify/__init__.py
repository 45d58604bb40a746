"""The notifier: alerts topic → people (generic webhooks, Slack, e-mail). docs/notify.md.

Pure modules — ``routes`` (config, filters, priority), ``digest`` (throttling and digests),
``formatting`` (each channel's message), ``signing`` (webhook HMAC), ``backoff`` (retry
schedule), ``ledger`` (committable offsets) — and one I/O module, ``notifier`` (the consumer
loop and the senders), whose docstring draws the flow.
"""
