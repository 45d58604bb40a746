"""Each channel's message, byte for byte where receivers parse it."""

from __future__ import annotations

import orjson
import pytest

from pipeline.notify.digest import Message
from pipeline.notify.formatting import (
    email_message,
    groups,
    slack_payload,
    span,
    summary,
    webhook_body,
)

ALERT = {
    "schema_version": 1,
    "alert_id": "0" * 31 + "1",
    "kind": "new_issue",
    "created_at": "2026-12-03T10:00:00.000Z",
    "service": "checkout",
    "environment": "production",
    "fingerprint": "f" * 32,
    "title": "ZeroDivisionError: division by zero",
    "level": "error",
    "numbers": {"count": 1},
}


def one(alert=ALERT, window=60.0) -> Message:
    return Message("r", (alert,), ((None, 0),), window)


def many(alerts, window=60.0) -> Message:
    return Message("r", tuple(alerts), tuple((None, i) for i in range(len(alerts))), window)


@pytest.mark.parametrize(
    "seconds, text",
    [(60, "minute"), (120, "2 minutes"), (30, "30 seconds"), (90, "90 seconds"), (3600, "hour")],
)
def test_span(seconds, text):
    assert span(seconds) == text


def test_single_alert_summary_and_webhook_body():
    assert summary(one()) == "[new_issue] checkout/production: ZeroDivisionError: division by zero"
    body = webhook_body(one())
    assert orjson.loads(body) == {
        "version": 1,
        "route": "r",
        "digest": False,
        "count": 1,
        "window_seconds": 60.0,
        "text": "[new_issue] checkout/production: ZeroDivisionError: division by zero",
        "alerts": [ALERT],
    }
    assert body == webhook_body(one())  # reproducible bytes: what the signature covers
    assert body.index(b'"alerts"') < body.index(b'"count"')  # keys sorted


def test_digest_groups_by_subject_most_frequent_first():
    other = {**ALERT, "kind": "spike", "title": "TimeoutError"}
    alerts = [ALERT, other, other, ALERT, other] + [{**ALERT, "title": f"E{i}"} for i in range(9)]
    message = many(alerts)
    assert groups(message.alerts)[:2] == [
        (3, "[spike] checkout/production: TimeoutError"),
        (2, "[new_issue] checkout/production: ZeroDivisionError: division by zero"),
    ]
    text = summary(message)
    assert text.startswith(
        "14 alerts in the last minute: 3× [spike] checkout/production: TimeoutError; "
        "2× [new_issue] checkout/production: ZeroDivisionError: division by zero; "
        "[new_issue] checkout/production: E0; "
    )
    assert text.endswith("; [new_issue] checkout/production: E7; … 1 more")  # 11 groups: 10 listed
    assert orjson.loads(webhook_body(message))["count"] == 14


def test_slack_escapes_control_characters_of_event_text():
    hostile = {**ALERT, "title": "<!channel> & <https://evil|click>"}
    payload = slack_payload(one(hostile))
    dumped = orjson.dumps(payload).decode()
    assert "<!channel>" not in dumped and "<https://evil" not in dumped
    assert payload["text"] == (
        "[new_issue] checkout/production: &lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
    )
    assert payload["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"*{payload['text']}*"},
    }
    fields = {
        f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in payload["blocks"][1]["fields"]
    }
    assert fields["*level*"] == "error" and fields["*alert_id*"] == ALERT["alert_id"]


def test_slack_digest_blocks():
    alerts = [ALERT] * 3 + [{**ALERT, "title": "B"}]
    payload = slack_payload(many(alerts))
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "4 alerts in the last minute"},
    }
    assert payload["blocks"][1]["text"]["text"] == (
        "• *3×* [new_issue] checkout/production: ZeroDivisionError: division by zero\n"
        "• [new_issue] checkout/production: B"
    )
    assert payload["text"].startswith("4 alerts in the last minute: 3× [new_issue]")


def test_email_subject_has_no_line_breaks_and_body_lists_every_alert():
    hostile = {**ALERT, "title": "boom\r\nBcc: victim@example.com"}
    mail = email_message(one(hostile), "es@example.com", ("a@example.com", "b@example.com"))
    assert mail["Subject"] == (
        "[errorstream] [new_issue] checkout/production: boom Bcc: victim@example.com"
    )
    assert mail["To"] == "a@example.com, b@example.com"
    assert "Bcc" not in {k for k, _ in mail.items() if k != "Subject"}
    digest = email_message(many([ALERT, {**ALERT, "title": "B"}]), "es@example.com", ("a@x",))
    assert digest["Subject"].startswith("[errorstream] 2 alerts in the last minute: ")
    text = digest.get_content()
    assert text.startswith("2 alerts in the last minute\n\n")
    assert (
        "  alert_id: " + ALERT["alert_id"] in text and "[new_issue] checkout/production: B" in text
    )
