"""Tag keys, verdict values and artifact locations of the promotion gate.

Chosen once; other parts (Slack, docs, the UI) read them. Every model-version tag the
gate writes starts with :data:`PREFIX`.
"""

from __future__ import annotations

PREFIX = "mlflow_monitor.gate."

# Every registry tag (model or version) whose key starts with this is gate-owned: written
# only by the gate itself or its policy API; the ``monitor:`` store refuses other writes.
OWNED_PREFIX = "mlflow_monitor."
# ...except these: bookkeeping of integrations that holds no trust state (the Slack
# notifier's thread of a version), written through the ordinary client.
NOT_OWNED_PREFIXES = ("mlflow_monitor.slack.",)

# Registered-model tag that selects the recipe (a built-in name or the YAML text).
# Mirrors ``mlflow_monitor.recipes.RECIPE_TAG``; kept here so the store never imports pandas.
RECIPE = "mlflow_monitor.recipe"

# Model-version tags written by the gate.
VERDICT = PREFIX + "verdict"  # PASSED | BLOCKED | OVERRIDDEN | ERROR_ALLOWED | ADVISORY_FAILED
TARGET = PREFIX + "target"  # "alias:champion" | "stage:Production" | "new_version"
REPORT = PREFIX + "report"  # runs:/<run_id>/mlflow_monitor/gate/<folder>
RECIPE_HASH = PREFIX + "recipe_hash"  # sha256 of the recipe text
TIMESTAMP = PREFIX + "timestamp"  # UTC ISO-8601 of the decision
REASON = PREFIX + "reason"  # short, escaped: failed rules or the error
DRIFT_SHARE = PREFIX + "drift_share"
CHAMPION = PREFIX + "champion_version"
AUDIT = PREFIX + "audit"  # "<user> <timestamp> <target> <verdict>", the last decision
# Break-glass, four eyes: a request (anyone who may promote: set OVERRIDE to a reason),
# an approval by a different person with the approver role (set OVERRIDE_APPROVE), then
# exactly one gated promotion of this version goes through; recorded, then deleted.
OVERRIDE = PREFIX + "override"  # the reason (the request)
OVERRIDE_USER = PREFIX + "override_user"  # who requested it: written by the store, never a client
OVERRIDE_REQUESTED_AT = PREFIX + "override_requested_at"
OVERRIDE_APPROVE = PREFIX + "override_approve"  # set it to approve; never stored
OVERRIDE_APPROVED_BY = PREFIX + "override_approved_by"  # written by the store from the approver
OVERRIDE_USED = PREFIX + "override_used"  # "<reason> (by <user> at <timestamp>, <target>)"

# Verdict values.
PASSED = "PASSED"
BLOCKED = "BLOCKED"
OVERRIDDEN = "OVERRIDDEN"
ERROR_ALLOWED = "ERROR_ALLOWED"  # evaluation failed, recipe on_error=allow
ADVISORY_FAILED = "ADVISORY_FAILED"  # a new-version check failed; nothing was blocked

# Where the reports go in the candidate's source run.
ARTIFACT_ROOT = "mlflow_monitor/gate"

# Our block in the model-version description; text outside it is the user's and is kept.
DESCRIPTION_BEGIN = "<!-- mlflow_monitor.gate:begin -->"
DESCRIPTION_END = "<!-- mlflow_monitor.gate:end -->"

# Prefix of the gate numbers logged as run metrics.
METRIC_PREFIX = "monitor/"

# The deferred Evidently report of the last decision (built after it, off the caller's
# thread): "pending" | "ready" | "failed"; when ready, the report's URI; when failed, why.
REPORT_STATUS = PREFIX + "report_status"
REPORT_HTML = PREFIX + "report_html"  # runs:/<run_id>/mlflow_monitor/gate/<folder>/report.html
REPORT_ERROR = PREFIX + "report_error"  # "<ErrorType>: <redacted text>"
