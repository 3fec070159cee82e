"""Render events (Verdict, RunSummary, HealthAlert, ProductionAlert) into Slack messages (Block Kit + fallback).

Every user string (model, column, rule and run names, messages, errors) is escaped
for mrkdwn; every block stays within Slack's limits (see :mod:`.blocks`). Numbers are
written by :func:`mlflow_monitor.formatting.format_number`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping, Optional

from mlflow_monitor.events import Event, HealthAlert, ProductionAlert, RunSummary, Verdict
from mlflow_monitor.formatting import format_number, format_signed
from mlflow_monitor.integrations.slack import blocks as bk
from mlflow_monitor.integrations.slack.links import MlflowUiLinks
from mlflow_monitor.integrations.slack.messages import SlackMessage, ThreadRef


class MessageRenderer:
    """Turns events into :class:`SlackMessage`; knobs: UI links, how many drifted columns."""

    def __init__(self, links: Optional[MlflowUiLinks] = None, max_drifted_columns: int = 10,
                 max_metrics: int = 15) -> None:
        self.links = links or MlflowUiLinks(None)
        self.max_drifted_columns = max_drifted_columns
        self.max_metrics = max_metrics

    def render(self, event: Event, suppressed: int = 0) -> SlackMessage:
        if isinstance(event, Verdict):
            msg = self.verdict(event)
        elif isinstance(event, RunSummary):
            msg = self.run_summary(event)
        elif isinstance(event, HealthAlert):
            msg = self.health_alert(event)
        elif isinstance(event, ProductionAlert):
            msg = self.production_alert(event)
        else:
            raise TypeError(f"cannot render {type(event).__name__}")
        if suppressed > 0:
            msg = dataclasses.replace(msg, blocks=bk.fit_blocks(
                msg.blocks + [bk.context(f":mute: {suppressed} similar message(s) suppressed since the last one")]),
                text=msg.text + f" (+{suppressed} suppressed)")
        return msg

    # ---- gate verdict -------------------------------------------------------------
    def verdict(self, v: Verdict) -> SlackMessage:
        decision = "PASS" if v.passed else "BLOCKED"
        if v.overridden:
            decision += " (override)"
        emoji = ":white_check_mark:" if v.passed else ":no_entry:"
        target = _target_label(v.target)
        version_url = self.links.model_version(v.model_name, v.version)
        run_url = self.links.run(v.run_id) if v.run_id else None

        blocks: list[dict[str, Any]] = [
            bk.header(f"{emoji} {decision}: {v.model_name} v{v.version} \u2192 {target}"),
            bk.fields([
                ("Model", bk.link(version_url, v.model_name)),
                ("Version", bk.escape(v.version)),
                ("Target", bk.escape(target)),
                ("Decision", f"*{decision}*"),
                *([("Champion", f"v{bk.escape(v.champion_version)}")] if v.champion_version else []),
                *([("By", bk.escape(v.user))] if v.user else []),
            ]),
        ]
        if v.failed_rules:
            lines = [_rule_line(r) for r in v.failed_rules]
            blocks.append(bk.bullet_section(f"Failed rules ({len(lines)})", lines, noun="more failed rules"))
        if v.drifted_columns:
            cols = sorted(v.drifted_columns, key=lambda c: _num(c.get("score")), reverse=True)
            top = [_column_line(c) for c in cols[: self.max_drifted_columns]]
            blocks.append(bk.bullet_section(f"Drifted columns ({len(cols)})", top, total=len(cols),
                                            noun="more drifted columns"))
        if v.champion_delta:
            items = sorted(v.champion_delta.items())
            lines = [f"`{bk.escape(k)}`: {_signed(d)}" for k, d in items]
            title = f"vs champion v{v.champion_version}" if v.champion_version else "vs champion"
            blocks.append(bk.bullet_section(title, lines[: self.max_metrics], total=len(lines), noun="more metrics"))
        if v.evidence and v.evidence.startswith("self-reported"):
            blocks.append(bk.context(f":warning: Evidence is {bk.escape(v.evidence)}: the promoter "
                                     "could have written these inputs"))
        if v.overridden:
            blocks.append(bk.context(f":warning: Override by {bk.escape(v.user or 'unknown')}: "
                                     f"{bk.escape(v.override_reason or 'no reason given')}"))
        links = [bk.link(version_url, "Model version")] if version_url else []
        if run_url:
            links.append(bk.link(run_url, "Report run"))
        if v.report_path:
            links.append(f"report: `{bk.escape(v.report_path)}`")
        if links:
            blocks.append(bk.context(" \u00b7 ".join(links)))

        failed = f" ({len(v.failed_rules)} failed rules)" if v.failed_rules else ""
        self_reported = " [self-reported evidence]" if (v.evidence or "").startswith("self-reported") else ""
        text = f"{decision}: {v.model_name} v{v.version} -> {target}{failed}{self_reported}"
        channel = _notify_channel(v.notify)
        return SlackMessage("verdict", bk.fallback_text(text), bk.fit_blocks(blocks), v.dedup_key,
                            ThreadRef("model_version", (v.model_name, str(v.version))), channel)

    # ---- run summary ----------------------------------------------------------------
    def run_summary(self, s: RunSummary) -> SlackMessage:
        ok = s.status == "FINISHED"
        emoji = ":checkered_flag:" if ok else ":boom:"
        name = s.run_name or s.run_id[:12]
        run_url = self.links.run(s.run_id, s.experiment_id)
        blocks: list[dict[str, Any]] = [
            bk.header(f"{emoji} Run {s.status.lower()}: {name}"),
            bk.fields([
                ("Run", bk.link(run_url, name)),
                ("Status", f"*{bk.escape(s.status)}*"),
                ("Duration", _duration(s.duration_s)),
                *([("Experiment", bk.escape(s.experiment_id))] if s.experiment_id else []),
            ]),
        ]
        keys = sorted(set(s.final_metrics) | set(s.best_metrics))
        if keys:
            lines = [_metric_line(k, s.final_metrics.get(k), s.best_metrics.get(k)) for k in keys]
            blocks.append(bk.bullet_section("Metrics (final, best)", lines[: self.max_metrics], total=len(lines),
                                            noun="more metrics"))
        if s.system_peaks:
            peaks = sorted(s.system_peaks.items(), key=lambda kv: _peak_rank(kv[0]))
            lines = [f"{bk.escape(_peak_label(k))}: {_fmt(v)}" for k, v in peaks]
            blocks.append(bk.bullet_section("System peaks", lines[: self.max_metrics], total=len(lines),
                                            noun="more"))
        if s.error:
            err = str(s.error).replace("```", "'''")
            blocks.append(bk.section("*Error*\n```" + bk.truncate(bk.escape(err), 2800) + "```"))
        text = f"Run {s.status.lower()}: {name} in {_duration(s.duration_s)}"
        return SlackMessage("run_summary", bk.fallback_text(text), bk.fit_blocks(blocks), s.dedup_key,
                            ThreadRef("run", (s.run_id,)))

    # ---- health alert -----------------------------------------------------------
    def health_alert(self, a: HealthAlert) -> SlackMessage:
        emoji = ":rotating_light:" if a.severity == "critical" else ":warning:"
        run_url = self.links.run(a.run_id, a.experiment_id)
        details = [("Run", bk.link(run_url, a.run_id[:12])), ("Rule", f"`{bk.escape(a.rule)}`")]
        if a.metric:
            details.append(("Metric", f"`{bk.escape(a.metric)}`"))
        if a.value is not None:
            details.append(("Value", _fmt(a.value)))
        if a.step is not None:
            details.append(("Step", str(a.step)))
        blocks = [
            bk.header(f"{emoji} Training health: {a.rule}"),
            bk.section(bk.escape(a.message)),
            bk.fields(details),
        ]
        text = f"Training health ({a.severity}) {a.rule}: {a.message}"
        return SlackMessage("health_alert", bk.fallback_text(text), bk.fit_blocks(blocks), a.dedup_key,
                            ThreadRef("run", (a.run_id,)))

    # ---- production alert ---------------------------------------------------------
    def production_alert(self, a: ProductionAlert) -> SlackMessage:
        emoji = ":rotating_light:" if a.severity == "critical" else ":warning:"
        run_url = self.links.run(a.run_id, a.experiment_id)
        version_url = self.links.model_version(a.model_name, a.version)
        details = [("Model", bk.link(version_url, a.model_name)), ("Version", bk.escape(a.version)),
                   ("Alert", f"`{bk.escape(a.alert)}`"), ("Window", bk.escape(a.window_id))]
        if a.metric:
            details.append(("Metric", f"`{bk.escape(a.metric)}`"))
        if a.value is not None:
            details.append(("Value", _fmt(a.value)))
        if a.threshold is not None:
            details.append(("Threshold", _fmt(a.threshold)))
        blocks = [
            bk.header(f"{emoji} Production {a.alert}: {a.model_name} v{a.version}"),
            bk.section(bk.escape(a.message)),
            bk.fields(details),
        ]
        if a.details:
            blocks.append(bk.bullet_section("Details", [bk.escape(d) for d in a.details[:10]],
                                            total=len(a.details), noun="more"))
        run_link = bk.link(run_url, "Monitoring run") if run_url else f"monitoring run `{bk.escape(a.run_id)}`"
        blocks.append(bk.context(run_link))
        text = f"Production {a.alert} ({a.severity}) {a.model_name} v{a.version}, window {a.window_id}: {a.message}"
        if run_url:
            text += f" {run_url}"
        return SlackMessage("production_alert", bk.fallback_text(text), bk.fit_blocks(blocks), a.dedup_key,
                            ThreadRef("model_version", (a.model_name, str(a.version))))

    def suppressed_summary(self, event: Event, count: int) -> SlackMessage:
        """The closing note for a key whose last ``count`` messages were throttled."""
        base = self.render(event)
        what = base.blocks[0]["text"]["text"] if base.blocks else base.kind
        blocks = [bk.section(f":mute: *{count} more* like this were suppressed (throttled): "
                             f"{bk.escape(what)}")]
        return dataclasses.replace(base, kind="suppressed", blocks=blocks,
                                   text=bk.fallback_text(f"{count} more suppressed: {what}"),
                                   dedup_key=base.dedup_key + ":suppressed")


def _notify_channel(notify: Any) -> Optional[str]:
    """The recipe's ``notify: {channel: ...}`` (or ``notify: {slack: {channel: ...}}``)."""
    if not isinstance(notify, Mapping):
        return None
    if isinstance(notify.get("slack"), Mapping):
        notify = notify["slack"]
    channel = notify.get("channel")
    return str(channel) if channel else None


def _target_label(target: str) -> str:
    kind, _, name = str(target).partition(":")
    if kind == "alias":
        return f"@{name}"
    if kind == "stage":
        return f"stage {name}"
    return str(target).replace("_", " ")


def _rule_line(rule: Mapping[str, Any]) -> str:
    line = f"`{bk.escape(rule.get('rule', '?'))}`: actual {_fmt(rule.get('actual'))}, " \
           f"threshold {_fmt(rule.get('threshold'))}"
    if rule.get("message"):
        line += f" \u2014 {bk.escape(rule['message'])}"
    return line


def _column_line(col: Mapping[str, Any]) -> str:
    line = f"`{bk.escape(col.get('column', '?'))}`: score {_fmt(col.get('score'))}"
    extra = [bk.escape(col["method"])] if col.get("method") else []
    if col.get("threshold") is not None:
        extra.append(f"threshold {_fmt(col.get('threshold'))}")
    return line + (f" ({', '.join(extra)})" if extra else "")


def _metric_line(key: str, final: Optional[float], best: Optional[float]) -> str:
    line = f"`{bk.escape(key)}`: {_fmt(final)}"
    return line + (f" (best {_fmt(best)})" if best is not None else "")


_PEAK_LABELS = {
    "cpu_utilization_percentage": "CPU %",
    "process_rss_megabytes": "Process RSS (MB)",
    "system_memory_usage_megabytes": "System memory (MB)",
    "system_memory_usage_percentage": "System memory %",
}


_GPU_PEAK = re.compile(r"^gpu_(\d+)_(memory_usage_megabytes|memory_usage_percentage|utilization_percentage)$")
_GPU_LABELS = {"memory_usage_megabytes": "memory (MB)", "memory_usage_percentage": "memory %",
               "utilization_percentage": "utilization %"}


def _peak_label(key: str) -> str:
    short = key.split("/")[-1]
    node = "/".join(key.split("/")[1:-1])  # DDP node id, if any
    gpu = _GPU_PEAK.match(short)
    if short in _PEAK_LABELS:
        label = _PEAK_LABELS[short]
    elif gpu:
        label = f"GPU {gpu[1]} {_GPU_LABELS[gpu[2]]}"
    else:
        return key.removeprefix("system/")
    return f"{node} {label}".strip()


def _peak_rank(key: str) -> tuple[int, str]:
    short = key.split("/")[-1]
    order = ["cpu_utilization_percentage", "process_rss_megabytes", "system_memory_usage_megabytes"]
    if short in order:
        return order.index(short), key
    return (3 if "gpu" in short and "memory" in short else 4), key


def _num(x: Any) -> float:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return float("-inf")
    return value if not math.isnan(value) else float("-inf")


def _fmt(x: Any) -> str:
    """A value for mrkdwn: the shared number format (``12,345``), escaped when it is not a number."""
    return bk.escape(format_number(x, thousands=True))


def _signed(x: Any) -> str:
    return bk.escape(format_signed(x))


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds or 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


_FALLBACK_FIELDS = {
    "verdict": ("model_name", "version", "target", "passed", "run_id"),
    "run_summary": ("run_id", "status", "run_name", "error"),
    "health_alert": ("run_id", "rule", "message", "metric", "value", "step", "severity"),
    "production_alert": ("model_name", "version", "alert", "window_id", "message", "run_id"),
}


def plain_fallback(event: Any, suppressed: int = 0) -> SlackMessage:
    """A minimal plain-text message for an event the renderer failed on (never raises).

    The event's type and key fields, escaped and cut short, no blocks; dead-lettered
    with the reason, so the event is not lost and ``slack replay`` can still send it.
    """
    kind = {Verdict: "verdict", RunSummary: "run_summary", HealthAlert: "health_alert",
            ProductionAlert: "production_alert"}.get(type(event), "event")
    parts = []
    for name in _FALLBACK_FIELDS.get(kind, ()):
        try:
            value = getattr(event, name, None)
            if value is not None:
                parts.append(f"{name}={str(value)[:200]}")
        except Exception:
            parts.append(f"{name}=<unprintable>")
    note = f" ({-suppressed} more suppressed)" if suppressed < 0 else (
        f" ({suppressed} similar suppressed)" if suppressed > 0 else "")
    text = bk.fallback_text(f"mlflow-monitor {type(event).__name__}{note}: " + ", ".join(parts))
    thread = None
    try:
        if kind in ("verdict", "production_alert"):
            thread = ThreadRef("model_version", (str(event.model_name), str(event.version)))
        elif kind in ("run_summary", "health_alert"):
            thread = ThreadRef("run", (str(event.run_id),))
        dedup_key = str(event.dedup_key)
    except Exception:
        dedup_key = f"{kind}:unrenderable"
    return SlackMessage(kind, text, [], dedup_key, thread)
