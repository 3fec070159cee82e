"""Evidently 0.7 reports (HTML + JSON snapshot) for a reference/current comparison.

The HTML is Evidently's own single-file report with two changes:

- every string in its embedded data is JSON-escaped (``<``, ``>``, ``&`` become
  ``\\u003c``...), so a column or category named ``</script><script>...`` or
  ``<img src=x onerror=...>`` shows as text and never appears raw in the file;
- a banner states the recipe, the sample sizes and the seed when frames were sampled;
- given the gate's summary (``verdict=``), the page opens with the gate's verdict: the
  rules with their actual values and thresholds, the drift method and each column's
  applied threshold (:func:`verdict_header`). Evidently's own sections, with their own
  defaults (e.g. "Dataset Drift" at a share of 0.5), follow under a note saying so.

Frames longer than the sample size are sampled with the seed (the gate's verdict uses
all rows; only the HTML comes from the sample), which keeps the HTML a few MiB, far
below the MLflow UI's 50 MiB preview limit.
"""

from __future__ import annotations

import dataclasses
import html as _html
import json
import re
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from mlflow_monitor.formatting import format_number
from mlflow_monitor.gate.data import split_columns

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.recipes import Recipe

__all__ = ["ReportArtifacts", "ReportError", "build_report", "drift_summary", "escape_embedded_data",
           "verdict_header", "with_verdict_header"]

DEFAULT_SAMPLE_SIZE = 50_000


class ReportError(RuntimeError):
    """Evidently could not build the report."""


@dataclasses.dataclass
class ReportArtifacts:
    """The report contents; the caller decides where to write them.

    ``html``: self-contained HTML (``report.html``); ``snapshot``: Evidently's JSON
    snapshot as a dict (``report.json``); ``sample_rows``: rows per frame the report was
    built from when sampling happened, else ``None``; ``reference_rows`` /
    ``current_rows``: rows in the frames given.
    """

    html: str
    snapshot: dict[str, Any]
    sample_rows: Optional[int]
    reference_rows: int = 0
    current_rows: int = 0
    seed: int = 0

    def drift_summary(self) -> dict[str, Any]:
        """Drift as the report shows it: ``drift_share``, ``n_drifted`` and ``columns``
        (each ``{column, method, threshold, score, drifted}``, drifted first)."""
        return drift_summary(self.snapshot)

    def metric_values(self) -> dict[str, Any]:
        """``{metric display name: value}`` from the snapshot, for summaries."""
        return {m.get("metric_name", m.get("metric_id")): m.get("value")
                for m in self.snapshot.get("metrics", [])}


def build_report(
    reference: Any,
    current: pd.DataFrame,
    *,
    recipe: "Recipe",
    sample_size: Optional[int] = None,
    seed: Optional[int] = None,
    title: Optional[str] = None,
    prediction: Optional[str] = None,
    evidence: Optional[str] = None,
    verdict: Optional[dict[str, Any]] = None,
) -> ReportArtifacts:
    """Run the recipe's Evidently presets and metrics on ``current`` vs ``reference``.

    ``reference`` is a DataFrame or a :class:`~mlflow_monitor.reference.ReferenceData`
    (whose recorded target/prediction fill in columns the recipe leaves unset).

    ``sample_size``/``seed`` default to ``recipe.report``. Performance presets need the
    recipe's target and prediction columns in both frames; they are dropped (with a note
    in the banner) when the prediction column is missing. ``title`` (e.g. the model name
    and version) is shown, escaped, in the banner, and so is ``evidence`` (the verdict's
    evidence, ``owned`` or ``self-reported: ...``). Raises :class:`ReportError`.

    Evidently needs the target and prediction in *both* frames for its performance
    presets: the gate adds the candidate's predictions to both (``prediction`` names that
    column when the recipe does not). When only the current frame has them, the banner
    lists the current-data metrics instead.

    ``verdict`` is the gate's ``summary.json`` dict
    (:func:`mlflow_monitor.gate.decision.report_summary`): the page then opens with
    :func:`verdict_header`, above the banner and Evidently's sections.
    """
    if prediction and recipe.columns.prediction is None:
        recipe = recipe.model_copy(
            update={"columns": recipe.columns.model_copy(update={"prediction": prediction})})
    recipe, reference = _with_reference_roles(recipe, reference)
    size = int(sample_size or recipe.report.sample_size)
    seed = recipe.report.seed if seed is None else int(seed)
    ref_s, cur_s = _sample(reference, size, seed), _sample(current, size, seed)
    sampled = len(ref_s) < len(reference) or len(cur_s) < len(current)
    definition, notes = _definition(recipe, ref_s, cur_s, current)
    items = _items(recipe, definition)
    try:
        from evidently import Dataset, Report

        report = Report(items, include_tests=True)
        snapshot = report.run(
            Dataset.from_pandas(cur_s, data_definition=definition),
            Dataset.from_pandas(ref_s, data_definition=definition),
        )
        raw_html = snapshot.get_html_str(as_iframe=False)
        snap = json.loads(snapshot.json())
    except Exception as exc:
        raise ReportError(f"Evidently could not build the report: {type(exc).__name__}: {exc}") from exc
    banner = _banner(recipe, reference, current, ref_s, cur_s, seed, sampled, notes, title, evidence)
    if verdict is not None:
        banner = verdict_header(verdict) + banner
    return ReportArtifacts(
        html=_insert_banner(escape_embedded_data(raw_html), banner),
        snapshot=snap,
        sample_rows=size if sampled else None,
        reference_rows=len(reference),
        current_rows=len(current),
        seed=seed,
    )


def drift_summary(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Per-column drift read from an Evidently snapshot dict (``ValueDrift`` metrics and
    their test status) plus the ``DriftedColumnsCount`` share and count."""
    failed = {
        t.get("metric_config", {}).get("metric_id")
        for t in snapshot.get("tests", [])
        if t.get("metric_config", {}).get("params", {}).get("type", "").endswith(":ValueDrift")
        and t.get("status") == "FAIL"
    }
    columns, share, count = [], None, None
    for m in snapshot.get("metrics", []):
        kind = m.get("config", {}).get("type", "")
        if kind.endswith(":ValueDrift"):
            cfg = m["config"]
            columns.append({"column": cfg.get("column"), "method": cfg.get("method"),
                            "threshold": cfg.get("threshold"), "score": m.get("value"),
                            "drifted": m.get("id") in failed})
        elif kind.endswith(":DriftedColumnsCount") and isinstance(m.get("value"), dict):
            share, count = m["value"].get("share"), m["value"].get("count")
    columns.sort(key=lambda c: not c["drifted"])
    n_drifted = sum(c["drifted"] for c in columns)
    return {
        "drift_share": float(share) if share is not None else (n_drifted / len(columns) if columns else 0.0),
        "n_drifted": int(count) if count is not None else n_drifted,
        "columns": columns,
    }


def escape_embedded_data(page: str) -> str:
    """Re-encode the JSON data Evidently embeds in its HTML so that no ``<``, ``>`` or
    ``&`` from user strings appears raw (the page renders the same text)."""
    out, pos = [], 0
    decoder = json.JSONDecoder()
    for match in re.finditer(r"var ((?:additional_graphs_)?metric_[0-9a-f]{32}) = ", page):
        if match.start() < pos:
            continue  # inside a value already re-encoded
        start = match.end()
        try:
            value, end = decoder.raw_decode(page, start)
        except json.JSONDecodeError as exc:
            raise ReportError(f"unexpected Evidently HTML layout near {match.group(1)}: {exc}") from exc
        out.append(page[pos:start])
        out.append(_safe_json(value))
        pos = end
    out.append(page[pos:])
    return "".join(out)


#: Per-column fields shown in fixed columns of the header's table, in this order; any
#: other scalar field of the column rows (a calibrated threshold, an effect floor, a
#: missing share...) gets a column of its own after them.
_KNOWN_COLUMN_FIELDS = ("column", "column_type", "method", "threshold", "score", "drifted")
_FIELD_LABELS = {"column_type": "type", "threshold": "threshold (applied)"}
_VERDICT_COLOURS = {"PASSED": "#1a7f37", "OVERRIDDEN": "#9a6700", "ERROR_ALLOWED": "#9a6700"}


def verdict_header(summary: dict[str, Any]) -> str:
    """The HTML block a gate report opens with, from its ``summary.json`` dict: the verdict,
    the model, version and target, each rule with its actual value and threshold, the
    drift method and share, one row per column (applied threshold, score, and every
    other scalar field the rows carry), and a note that Evidently's sections below use
    Evidently's own defaults. Every value is HTML-escaped."""
    esc = _html.escape
    verdict = str(summary.get("verdict") or "?")
    colour = _VERDICT_COLOURS.get(verdict, "#cf222e")
    parts = [f'<h2 style="margin:4px 0;color:{colour}">mlflow-monitor gate: {esc(verdict)}</h2>']
    if summary.get("model_name"):
        parts.append(f"<div>model <code>{esc(str(summary['model_name']))}</code> version "
                     f"<code>{esc(str(summary.get('version', '')))}</code> &rarr; "
                     f"<code>{esc(str(summary.get('target', '')))}</code> &middot; "
                     f"{esc(str(summary.get('timestamp', '')))} &middot; by {esc(str(summary.get('user', '')))}</div>")
    elif summary.get("target"):
        parts.append(f"<div>{esc(str(summary['target']))}</div>")
    if summary.get("error"):
        parts.append(f"<div><strong>evaluation error:</strong> {esc(str(summary['error']))}</div>")
    rules = summary.get("rules") or []
    if rules:
        rows = "".join(
            f"<tr><td><code>{esc(str(r.get('rule')))}</code></td>"
            f"<td>{'skipped' if r.get('skipped') else ('passed' if r.get('passed') else '<strong>FAILED</strong>')}</td>"
            f"<td>{_cell(r.get('actual'))}</td><td>{_cell(r.get('threshold'))}</td>"
            f"<td>{esc(str(r.get('message') or ''))}</td></tr>" for r in rules)
        parts.append('<table id="mlflow-monitor-rules" style="border-collapse:collapse;margin:6px 0">'
                     "<tr><th>rule</th><th>result</th><th>actual</th><th>threshold</th><th>detail</th></tr>"
                     f"{rows}</table>")
    drift = summary.get("drift")
    if isinstance(drift, dict):
        parts.append(_drift_block(drift))
    parts.append('<p id="mlflow-monitor-evidently-note" style="margin:6px 0"><em>The gate decided with '
                 "the rules and thresholds above. The Evidently report below is evidence built with "
                 "Evidently's own defaults: its &ldquo;Dataset Drift&rdquo; test (a share of 0.5) and its "
                 "per-column thresholds may differ from the gate's, and do not change the verdict."
                 "</em></p>")
    style = ("<style>#mlflow-monitor-verdict td,#mlflow-monitor-verdict th{border:1px solid #d0d7de;"
             "padding:2px 6px;text-align:left;font-size:13px}</style>")
    return (style + '<div id="mlflow-monitor-verdict" style="font-family:sans-serif;padding:8px 16px;'
            'border-bottom:1px solid #d0d7de">' + "".join(parts) + "</div>")


def with_verdict_header(page: str, summary: dict[str, Any]) -> str:
    """``page`` (a report's HTML) opening with :func:`verdict_header` of ``summary``, for
    reports whose verdict is known only after Evidently ran."""
    return _insert_banner(page, verdict_header(summary))


def _drift_block(drift: dict[str, Any]) -> str:
    esc = _html.escape
    scalars = {k: v for k, v in drift.items()
               if k not in ("columns", "column_methods", "skipped") and not isinstance(v, (dict, list))}
    line = " &middot; ".join(f"{esc(str(k))} {_cell(v)}" for k, v in scalars.items())
    out = [f'<div id="mlflow-monitor-drift">drift: {line}</div>']
    if drift.get("skipped"):
        out.append(f"<div>not checked: {esc(', '.join(map(str, drift['skipped'])))}</div>")
    columns = [c for c in drift.get("columns") or [] if isinstance(c, dict)]
    if columns:
        extra: list[str] = []
        for c in columns:
            extra += [k for k, v in c.items() if k not in _KNOWN_COLUMN_FIELDS and k not in extra
                      and (v is None or isinstance(v, (str, int, float, bool)))]
        fields = [*(_KNOWN_COLUMN_FIELDS), *extra]
        head = "".join(f"<th>{esc(_FIELD_LABELS.get(f, f))}</th>" for f in fields)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c.get(f))}</td>" for f in fields) + "</tr>"
                       for c in sorted(columns, key=lambda c: not c.get("drifted")))
        out.append('<table id="mlflow-monitor-columns" style="border-collapse:collapse;margin:6px 0">'
                   f"<tr>{head}</tr>{body}</table>")
    return "".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "<strong>yes</strong>" if value else "no"
    if isinstance(value, (int, float)):
        return _html.escape(format_number(value))
    return _html.escape(str(value))


# -- helpers ---------------------------------------------------------------------------
def _safe_json(value: Any) -> str:
    text = json.dumps(value, allow_nan=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    if len(frame) <= size:
        return frame
    return frame.sample(n=size, random_state=seed).sort_index()


def _with_reference_roles(recipe: "Recipe", reference: Any) -> tuple["Recipe", pd.DataFrame]:
    if isinstance(reference, pd.DataFrame):
        return recipe, reference
    frame = getattr(reference, "frame", None)
    if not isinstance(frame, pd.DataFrame):
        raise ReportError(f"reference must be a DataFrame or ReferenceData, got {type(reference).__name__}")
    cols = recipe.columns
    update = {role: getattr(reference, role, None) for role in ("target", "prediction")
              if getattr(cols, role) is None and getattr(reference, role, None)}
    if update:
        recipe = recipe.model_copy(update={"columns": cols.model_copy(update=update)})
    return recipe, frame


def _definition(
    recipe: "Recipe", ref: pd.DataFrame, cur: pd.DataFrame, full_current: pd.DataFrame
) -> tuple[Any, list[str]]:
    from evidently import (
        BinaryClassification,
        DataDefinition,
        MulticlassClassification,
        Regression,
    )

    cols = recipe.columns
    numerical, categorical = split_columns(full_current, cols)
    notes: list[str] = []
    one_sided = [c for c in (*numerical, *categorical) if c not in ref.columns or c not in cur.columns]
    if one_sided:
        numerical = [c for c in numerical if c not in one_sided]
        categorical = [c for c in categorical if c not in one_sided]
        notes.append(f"not compared (missing from one of the frames): {', '.join(map(str, one_sided))}")
    kwargs: dict[str, Any] = {"numerical_columns": numerical, "categorical_columns": categorical}
    target, prediction = cols.target, cols.prediction
    has_perf = bool(target and prediction and all(
        c in f.columns for f in (ref, cur) for c in (target, prediction)
    ))
    if recipe.task != "drift" and target and not has_perf:
        notes.append(f"no performance section: target {target!r} and prediction "
                     f"{prediction!r} are not both in the reference and current data")
        if prediction and target in full_current.columns and prediction in full_current.columns:
            notes.append(_current_only_metrics(recipe.task, full_current, target, prediction))
    if has_perf and recipe.task == "regression":
        kwargs["regression"] = [Regression(target=target, prediction=prediction)]
    elif has_perf and recipe.task == "classification":
        labels = pd.concat([ref[target], cur[target], ref[prediction], cur[prediction]]).dropna().unique()
        probas = cols.prediction_proba
        if len(labels) <= 2:
            kwargs["classification"] = [BinaryClassification(
                target=target,
                prediction_labels=prediction,
                prediction_probas=probas[0] if probas and len(probas) == 1 else None,
                pos_label=_pos_label(labels),
            )]
        else:
            kwargs["classification"] = [MulticlassClassification(
                target=target, prediction_labels=prediction,
                prediction_probas=list(probas) if probas and len(probas) > 1 else None,
            )]
    return DataDefinition(**kwargs), notes


def _current_only_metrics(task: str, current: pd.DataFrame, target: str, prediction: str) -> str:
    from mlflow_monitor.gate.performance import compute_performance

    try:
        values = compute_performance(current, task=task, target=target, prediction=prediction)
    except ValueError as exc:
        return f"performance on current data not computed: {exc}"
    shown = ", ".join(f"{k} {format_number(v)}" for k, v in values.items())
    return f"performance on all current rows: {shown}"


def _pos_label(labels: np.ndarray) -> Any:
    values = list(labels)
    for candidate in (1, True, "1"):
        if candidate in values:
            return candidate
    return sorted(values, key=str)[-1] if values else 1


def _items(recipe: "Recipe", definition: Any) -> list[Any]:
    import evidently.metrics as em
    import evidently.presets as ep

    has_perf = bool(getattr(definition, "classification", None) or getattr(definition, "regression", None))
    items: list[Any] = []
    for name in recipe.effective_presets:
        if name in ("ClassificationPreset", "RegressionPreset") and not has_perf:
            continue
        items.append(getattr(ep, name)())
    for spec in recipe.metrics:
        name, kwargs = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
        items.append(getattr(em, name)(**(kwargs or {})))
    if not items:
        items.append(ep.DataDriftPreset())
    return items


def _banner(
    recipe: "Recipe",
    reference: pd.DataFrame,
    current: pd.DataFrame,
    ref_s: pd.DataFrame,
    cur_s: pd.DataFrame,
    seed: int,
    sampled: bool,
    notes: list[str],
    title: Optional[str],
    evidence: Optional[str] = None,
) -> str:
    if sampled:
        rows = (f"This report was built from a seeded sample (seed {seed}): "
                f"{len(ref_s):,} of {len(reference):,} reference rows and "
                f"{len(cur_s):,} of {len(current):,} current rows. "
                "The gate's verdict uses all rows.")
    else:
        rows = f"Reference: {len(reference):,} rows. Current: {len(current):,} rows."
    parts = [f"<strong>mlflow-monitor</strong> &middot; recipe "
             f"<code>{_html.escape(recipe.name or recipe.task)}</code> &middot; {_html.escape(rows)}"]
    if title:
        parts.insert(0, f"<strong>{_html.escape(title)}</strong><br>")
    if evidence:
        style = ' style="color:#9a6700"' if evidence != "owned" else ""
        parts.append(f'<br><strong id="mlflow-monitor-evidence"{style}>Evidence: '
                     f"{_html.escape(evidence)}</strong>")
    parts += [f"<br><em>{_html.escape(n)}</em>" for n in notes]
    return ('<div id="mlflow-monitor-banner" style="font-family:sans-serif;padding:8px 16px;'
            'background:#f3f6fa;border-bottom:1px solid #d0d7de">' + "".join(parts) + "</div>")


def _insert_banner(page: str, banner: str) -> str:
    marker = "<body>"
    at = page.find(marker)
    if at < 0:
        return banner + page
    at += len(marker)
    return page[:at] + "\n" + banner + page[at:]
