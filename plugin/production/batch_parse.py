"""Re-parse the request bodies of one capture batch with one MLflow parse, not one a body.

The capture process re-parses each captured body with MLflow's own parser (the rows the
model saw). That costs about 0.35 ms of CPU for a one-row JSON body, nearly all of it
MLflow's per-call set-up (the DataFrame, the schema casts), and on a small machine the
capture process shares its cores with the worker it serves.

:func:`parse_bodies` merges the JSON bodies of a batch that are all plain
``{"dataframe_split": {"columns": C, "data": rows}}`` with the same columns ``C`` into one
body, parses it once with MLflow's parser and hands each request its slice of the rows.
Merging only happens when the model has a column-named input schema: MLflow then casts
every column to the schema's type, so a row parses the same alone or beside others (the
merge changes nothing a row-wise parse would see). Any other body (CSV, Parquet,
``dataframe_records``, ``instances``, an ``index`` or ``params`` key, other columns) and
any merged parse that fails or gives an unexpected shape fall back to the parse of each
body alone, so every result is what :func:`~mlflow_monitor.mlflow_compat.parse_scoring_input`
gives for that body.

:func:`parse_batch` is the same parse with the merged frame left whole (a
:class:`MergedParse`: which bodies, how many rows each), for a caller that folds the rows
together anyway; slicing it into one frame a body and concatenating them again costs
more than the parse (the capture process, ``capture_process.feed``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional, Union

from mlflow_monitor import mlflow_compat

__all__ = ["MergedParse", "parse_batch", "parse_bodies"]

_JSON = "application/json"
_SPLIT = "dataframe_split"


class MergedParse(NamedTuple):
    """The bodies parsed together: their indexes in the batch (in order), each one's row
    count, and the one frame of all their rows, in that order."""

    indexes: list[int]
    counts: list[int]
    frame: Any


def parse_bodies(bodies: Sequence[tuple[bytes, str]], metadata: Any) -> list[Union[Any, Exception]]:
    """The parsed input of each ``(body, content_type)``, in order; an exception in the
    place of a body that MLflow's parser refuses."""
    out, merged = parse_batch(bodies, metadata)
    if merged is not None:
        start = 0
        for i, n in zip(merged.indexes, merged.counts):
            out[i] = merged.frame.iloc[start:start + n]  # its rows; the index is the merged frame's (no row data)
            start += n
    return out


def parse_batch(bodies: Sequence[tuple[bytes, str]],
                metadata: Any) -> tuple[list[Union[Any, Exception]], Optional[MergedParse]]:
    """As :func:`parse_bodies`, but the bodies parsed together are left as one frame: their
    places in the list are None and the :class:`MergedParse` holds their rows (None when
    no bodies were merged)."""
    out: list[Union[Any, Exception]] = [None] * len(bodies)
    merged_parse: Optional[MergedParse] = None
    try:
        merged = _merge_candidates(bodies, metadata)
        if merged is not None:
            merged_parse = _parse_merged(merged, metadata)
    except Exception:  # the merge is only a shortcut: anything odd, and every body is parsed alone
        merged_parse = None
    done = set(merged_parse.indexes) if merged_parse is not None else set()
    for i, (body, content_type) in enumerate(bodies):
        if i not in done:
            out[i] = _parse_one(body, content_type, metadata)
    return out, merged_parse


def _parse_one(body: Union[bytes, dict], content_type: str, metadata: Any) -> Union[Any, Exception]:
    try:
        return mlflow_compat.parse_scoring_input(body, content_type, metadata)
    except Exception as exc:  # the caller decides what a refused body means
        return exc


class _Merged:
    """Bodies that can be parsed together: their indexes, row counts, columns and rows."""

    __slots__ = ("indexes", "counts", "columns", "rows")

    def __init__(self, columns: list) -> None:
        self.indexes: list[int] = []
        self.counts: list[int] = []
        self.columns = columns
        self.rows: list = []


def _merge_candidates(bodies: Sequence[tuple[bytes, str]], metadata: Any) -> Optional[_Merged]:
    if len(bodies) < 2 or not _casts_by_column(metadata):
        return None
    merged: Optional[_Merged] = None
    for i, (body, content_type) in enumerate(bodies):
        if not isinstance(content_type, str) or content_type.split(";", 1)[0].strip() != _JSON:
            continue
        try:
            decoded = json.loads(body)
        except (ValueError, TypeError):
            continue
        split = decoded.get(_SPLIT) if type(decoded) is dict and len(decoded) == 1 else None
        if type(split) is not dict or len(split) != 2:
            continue
        columns, rows = split.get("columns"), split.get("data")
        if type(columns) is not list or type(rows) is not list or not rows:
            continue
        width = len(columns)
        if not all(type(row) is list and len(row) == width for row in rows):
            continue
        if merged is None:
            merged = _Merged(columns)
        elif columns != merged.columns:
            continue
        merged.indexes.append(i)
        merged.counts.append(len(rows))
        merged.rows.extend(rows)
    return merged if merged is not None and len(merged.indexes) > 1 else None


def _casts_by_column(metadata: Any) -> bool:
    """True when MLflow's parser casts each input column to a schema type."""
    try:
        schema = metadata.get_input_schema() if metadata is not None else None
        return schema is not None and bool(schema.has_input_names()) and not schema.is_tensor_spec()
    except Exception:
        return False


def _parse_merged(merged: _Merged, metadata: Any) -> Optional[MergedParse]:
    """Parse the merged bodies once; None when the merged parse fails or its shape is not
    the rows sent."""
    frame = _parse_one({_SPLIT: {"columns": merged.columns, "data": merged.rows}}, _JSON, metadata)
    if isinstance(frame, Exception) or not hasattr(frame, "iloc") or len(frame) != len(merged.rows):
        return None
    return MergedParse(merged.indexes, merged.counts, frame)
