"""``mlflow-monitor audit verify | show | export``: the gate's audit chain from the command line.

``verify`` exits 0 when the chain is intact, 1 when a record was edited, deleted or
moved (each one named), 2 on usage errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import click

_REGISTRY_HELP = ("Registry store URI whose audit to read: the database that holds the registry "
                  "(sqlite:///..., postgresql://..., mysql+pymysql://...; a 'monitor:' prefix is "
                  "stripped). Default: the current registry URI (MLFLOW_REGISTRY_URI, else the "
                  "tracking URI). Any other store reads the local $MLFLOW_MONITOR_HOME/audit/gate.jsonl.")


def _store(registry_uri: Optional[str]) -> Any:
    from mlflow_monitor.gate.audit import audit_store, resolve_store_uri
    from mlflow_monitor.redaction import redact_uri

    uri = resolve_store_uri(registry_uri)
    if uri and uri.split(":", 1)[0].lower() in ("http", "https", "databricks", "databricks-uc"):
        click.echo(f"note: the registry {redact_uri(uri)} is served remotely; a gate in its server "
                   "keeps the audit in the server's database: pass --registry-uri <that database> "
                   "to read it. Reading this machine's local audit file.", err=True)
    try:
        store = audit_store(uri)
        store.head()  # connects (and creates the tables) now, so a bad URI fails here
    except Exception as exc:
        from mlflow_monitor.redaction import redact

        raise click.ClickException(f"cannot open the audit of {redact_uri(uri)}: "
                                   f"{type(exc).__name__}: {redact(str(exc))[:300]}") from None
    return store


@click.group("audit")
def audit() -> None:
    """The gate's hash-chained audit log: verify, show, export."""


@audit.command()
@click.option("--registry-uri", default=None, help=_REGISTRY_HELP)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Verify this JSONL chain instead (an 'audit export', or a local gate.jsonl).")
def verify(registry_uri: Optional[str], path: Optional[Path]) -> None:
    """Check every audit record: exit 1 naming each one edited, deleted or reordered."""
    from mlflow_monitor.gate.audit import verify_store
    from mlflow_monitor.gate.audit_chain import ENV_KEY
    from mlflow_monitor.gate.audit_file import FileAudit

    report = verify_store(FileAudit(path) if path is not None else _store(registry_uri))
    keyed = f"HMAC checked with {ENV_KEY}" if report.keyed else f"no HMAC key ({ENV_KEY} not set): hashes only"
    click.echo(f"audit: {report.records} records in {report.source}; {keyed}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        span = f" (records 1..{report.last_seq})" if report.records else ""
        click.echo(f"OK: the chain is intact{span}")
        return
    click.echo(f"FAILED: {len(report.problems)} problem(s)")
    for problem in report.problems:
        click.echo(f"  {problem}")
    sys.exit(1)


@audit.command()
@click.argument("model")
@click.argument("version", required=False)
@click.option("--registry-uri", default=None, help=_REGISTRY_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line instead of a table.")
def show(model: str, version: Optional[str], registry_uri: Optional[str], as_json: bool) -> None:
    """The audit records of MODEL (and VERSION), oldest first."""
    from mlflow_monitor.gate.escaping import safe_text

    rows = list(_store(registry_uri).rows(model_name=model, version=version))
    if as_json:
        for row in rows:
            click.echo(json.dumps({"seq": row.seq, **row.record}, sort_keys=True))
        return
    if not rows:
        which = f"model '{safe_text(model)}'" + (f" version {safe_text(version)}" if version else "")
        click.echo(f"no audit records for {which}")
        return
    header = ("seq", "time (UTC)", "event", "user", "version", "target", "result", "champion_before", "detail")
    table = [header] + [_cells(row) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def _cells(row: Any) -> tuple[str, ...]:
    from mlflow_monitor.gate.escaping import safe_text

    rec = row.record
    result = rec.get("verdict") or rec.get("result") or ""
    detail = rec.get("reason") or rec.get("error") or rec.get("override_reason") or ""
    if not detail and rec.get("rules"):
        failed = [r.get("rule", "?") for r in rec["rules"] if isinstance(r, dict) and not r.get("passed", True)]
        detail = ("failed: " + ", ".join(map(str, failed))) if failed else "all rules passed"
    return tuple(safe_text(str(x if x is not None else "-"))[:200] for x in (
        row.seq, rec.get("ts", ""), rec.get("event", ""), rec.get("user"), rec.get("version"),
        rec.get("target"), result, rec.get("champion_before"), detail))


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True,
              help="Output format: one JSON object per record, with its chain fields.")
@click.option("--registry-uri", default=None, help=_REGISTRY_HELP)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write (default: stdout).")
def export(fmt: str, registry_uri: Optional[str], output: Any) -> None:
    """Every audit record with its seq, prev_hash, hash and mac, oldest first."""
    for row in _store(registry_uri).rows():
        output.write(json.dumps({"seq": row.seq, "prev_hash": row.prev_hash, "hash": row.hash,
                                 "mac": row.mac, "record": row.record}, sort_keys=True,
                                ensure_ascii=False) + "\n")
