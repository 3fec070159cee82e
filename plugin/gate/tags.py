"""Tag keys, verdict values and artifact locations of the promotion gate.

Chosen once; other parts (Slack, docs, the UI) read them. Every model-version tag the
gate writes starts with :data:`PREFIX`.
"""

from __future__ import annotations

PREFIX = "mlflow_monitor.gate."

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
# Break-glass: set to a reason; lets exactly one gated promotion of this version
# through, is recorded, then deleted (consumed).
OVERRIDE = PREFIX + "override"
OVERRIDE_USER = PREFIX + "override_user"  # who asked for it (set by the CLI/API)
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
