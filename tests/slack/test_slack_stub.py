"""The loopback Slack stub answers the way Slack does (so the other tests can trust it)."""

from __future__ import annotations

import pytest


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.parametrize("payload,error", [
    ({"text": "x", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
    ({"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}, "invalid_blocks"),
    ({"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}]}, "invalid_blocks"),
    ({"text": "x", "blocks": [{"type": "banner"}]}, "invalid_blocks"),
    ({"text": "x", "blocks": [{"type": "section"}]}, "invalid_blocks"),
    ({"text": "t" * 40001}, "msg_too_long"),
    ({"icon_emoji": ":robot_face:"}, "no_text"),
])
def test_stub_rejects_payloads_the_way_slack_does(stub, payload, error):
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import WebClient
    from slack_sdk.webhook import WebhookClient

    web = WebClient(token=stub.token, base_url=stub.api_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="#ml-alerts", **payload)
    assert info.value.response["error"] == error
    resp = WebhookClient(stub.webhook_url, retry_handlers=[]).send_dict(payload)
    assert resp.status_code == 400 and resp.body == error
    assert stub.messages == []


def test_stub_checks_auth_and_channel(stub):
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import WebClient

    with pytest.raises(SlackApiError, match="invalid_auth"):
        WebClient(token="xoxb-wrong", base_url=stub.api_url).chat_postMessage(channel="#ml-alerts", text="x")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        WebClient(token=stub.token, base_url=stub.api_url).chat_postMessage(channel="#nope", text="x")
