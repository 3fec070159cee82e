"""The Slack demo runs without Slack: it starts the stub and prints what it sent."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def _load_demo():
    path = Path(__file__).resolve().parents[2] / "examples" / "demo_slack.py"
    spec = importlib.util.spec_from_file_location("demo_slack", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_without_slack_posts_to_its_own_stub_and_prints_block_kit():
    printed: list[str] = []
    messages = _load_demo().run_slack_demo(out=printed.append)
    assert len(messages) == 2
    assert "BLOCKED" in messages[0]["text"] and messages[1]["text"].startswith("Run finished")
    shown = [json.loads(p) for p in printed if p.startswith("{")]
    assert [m["blocks"][0]["type"] for m in shown] == ["header", "header"]
    assert "local Slack API stub" in printed[0]
