"""Block Kit helpers cut and truncate to Slack's limits instead of being rejected."""

from __future__ import annotations

from helpers.slack_stub import validate_blocks

from mlflow_monitor.integrations.slack import blocks as bk


def test_more_than_50_blocks_are_cut_to_50_with_a_more_line():
    blocks = bk.fit_blocks([bk.section(f"item {i}") for i in range(60)])
    validate_blocks(blocks)  # Slack's rules, as the stub applies them
    assert len(blocks) == 50 and "+11 more blocks" in blocks[-1]["elements"][0]["text"]


def test_long_single_lines_and_headers_are_truncated_not_rejected():
    blocks = [bk.header("h" * 500), bk.bullet_section("t" * 4000, ["x" * 5000] * 3), bk.fields([("k" * 3000, "v")] * 12)]
    validate_blocks(blocks)
    assert blocks[0]["text"]["text"].endswith("\u2026") and len(blocks[0]["text"]["text"]) == 150
