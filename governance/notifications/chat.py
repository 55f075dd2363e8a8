"""Event messages for people in chat: Slack and Microsoft Teams incoming webhooks.

An event's payload carries `summary` (one sentence), `url` (a path to the page where the
decision is taken) and, where they help, `service`, `version`, `environment`, `change` and
`reasons`. Chat messages show those and a button straight to the page.
"""

from __future__ import annotations

from django.conf import settings

FACTS = (
    ("service", "Service"),
    ("version", "Version"),
    ("environment", "Environment"),
    ("change", "Change"),
    ("stage", "Stage"),
    ("status", "Status"),
)


def message(channel: str, document: dict) -> dict:
    """The body for `channel`: the event document itself for a webhook, else a chat message."""
    if channel == "slack":
        return slack_message(document)
    if channel == "teams":
        return teams_message(document)
    return document


def _parts(document: dict) -> tuple[str, list[tuple[str, str]], list[str], str]:
    payload = document.get("payload", {})
    summary = str(payload.get("summary") or f"{document['kind']} {document['subject']}")
    facts = [(label, str(payload[key])) for key, label in FACTS if payload.get(key)]
    reasons = [str(reason) for reason in payload.get("reasons", [])][:5]
    url = str(payload.get("url", ""))
    link = f"{settings.SITE_URL}{url}" if url.startswith("/") else url
    return summary, facts, reasons, link


def slack_message(document: dict) -> dict:
    """Block Kit: the summary, the facts as fields, the reasons, and an "Open" button."""
    summary, facts, reasons, link = _parts(document)
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": summary}}]
    if facts:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts],
            }
        )
    if reasons:
        text = "\n".join(f"• {reason}" for reason in reasons)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in Signoff"},
                        "url": link,
                    }
                ],
            }
        )
    return {"text": summary, "blocks": blocks}


def teams_message(document: dict) -> dict:
    """An Adaptive Card in the envelope Teams incoming webhooks (and Workflows) accept."""
    summary, facts, reasons, link = _parts(document)
    body: list[dict] = [{"type": "TextBlock", "text": summary, "wrap": True, "weight": "Bolder"}]
    if facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
    body += [{"type": "TextBlock", "text": f"- {reason}", "wrap": True} for reason in reasons]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Signoff", "url": link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
