"""What each channel receives: the webhook's JSON body, Slack's text + blocks, the e-mail.

Pure functions of a ``Message`` (one alert or a digest). Event data in alerts is untrusted
text: Slack's control characters (``& < >``) are escaped so a title cannot mention
``<!channel>`` or forge a link, and e-mail headers get no line breaks.
"""

from __future__ import annotations

from collections import Counter
from email.message import EmailMessage
from typing import Any

import orjson

from pipeline.notify.digest import Message

DIGEST_LINES = 10  # groups listed in a digest; the rest are counted
WEBHOOK_VERSION = 1


def span(window: float) -> str:
    """``60`` → "minute", ``120`` → "2 minutes", ``30`` → "30 seconds"."""
    seconds = int(round(window))
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds} seconds"


def alert_subject(alert: dict[str, Any]) -> str:
    """``[new_issue] checkout/production: ZeroDivisionError: division by zero``."""
    where = alert.get("service", "")
    if alert.get("environment"):
        where += f"/{alert['environment']}"
    return f"[{alert.get('kind', 'alert')}] {where}: {alert.get('title', '')}"


def groups(alerts: tuple[dict[str, Any], ...]) -> list[tuple[int, str]]:
    """Alerts of a digest grouped by subject, most frequent first (ties: first seen)."""
    counts = Counter(alert_subject(a) for a in alerts)
    order = {s: i for i, s in reversed(list(enumerate(alert_subject(a) for a in alerts)))}
    return sorted(((n, s) for s, n in counts.items()), key=lambda g: (-g[0], order[g[1]]))


def summary(message: Message) -> str:
    """One line: the alert's subject, or "12 alerts in the last minute: 7× …; 5× …"."""
    if not message.is_digest:
        return alert_subject(message.alerts[0])
    listed = groups(message.alerts)
    parts = [f"{n}× {s}" if n > 1 else s for n, s in listed[:DIGEST_LINES]]
    if len(listed) > DIGEST_LINES:
        parts.append(f"… {len(listed) - DIGEST_LINES} more")
    head = f"{len(message.alerts)} alerts in the last {span(message.window)}"
    return f"{head}: " + "; ".join(parts)


def details(alert: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields a person reads first, in a fixed order; absent ones left out."""
    out = []
    for key in ("level", "environment", "release", "culprit", "category", "fingerprint"):
        if alert.get(key):
            out.append((key, str(alert[key])))
    numbers = alert.get("numbers") or {}
    if numbers:
        out.append(("numbers", ", ".join(f"{k}={v}" for k, v in sorted(numbers.items()))))
    out.append(("alert_id", str(alert.get("alert_id", ""))))
    return out


# -- generic webhook --------------------------------------------------------------------


def webhook_body(message: Message) -> bytes:
    """The JSON body (keys sorted, so the bytes are reproducible)."""
    body = {
        "version": WEBHOOK_VERSION,
        "route": message.route,
        "digest": message.is_digest,
        "count": len(message.alerts),
        "window_seconds": message.window,
        "text": summary(message),
        "alerts": list(message.alerts),
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


# -- Slack-compatible incoming webhook -----------------------------------------------------


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message) -> dict[str, Any]:
    text = slack_escape(summary(message))
    blocks: list[dict[str, Any]] = []
    if message.is_digest:
        head = f"{len(message.alerts)} alerts in the last {span(message.window)}"
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": head[:150]}})
        listed = groups(message.alerts)
        lines = [
            f"• *{n}×* {slack_escape(s)}" if n > 1 else f"• {slack_escape(s)}"
            for n, s in listed[:DIGEST_LINES]
        ]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
        if len(listed) > DIGEST_LINES:
            more = f"… and {len(listed) - DIGEST_LINES} more kinds of alert"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    else:
        alert = message.alerts[0]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}})
        fields = [
            {"type": "mrkdwn", "text": f"*{k}*\n{slack_escape(v)}"} for k, v in details(alert)
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields[:10]})
    return {"text": text, "blocks": blocks}


# -- e-mail -----------------------------------------------------------------------------


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def email_text(message: Message) -> str:
    lines = [summary(message) if not message.is_digest else _digest_head(message), ""]
    for alert in message.alerts:
        lines.append(alert_subject(alert))
        lines.extend(f"  {k}: {v}" for k, v in details(alert))
        lines.append("")
    return "\n".join(lines)


def _digest_head(message: Message) -> str:
    return f"{len(message.alerts)} alerts in the last {span(message.window)}"


def email_message(message: Message, mail_from: str, mail_to: tuple[str, ...]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = _one_line(f"[errorstream] {summary(message)}")
    mail["From"] = mail_from
    mail["To"] = ", ".join(mail_to)
    mail.set_content(email_text(message))
    return mail
