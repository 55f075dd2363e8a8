"""Celery queues by kind of work, and the route of every task of the project.

Workers subscribe to queues, not to tasks: one kind of worker can take everything (compose,
`make run`), or the queues can be split so that a long report never delays a notification
(Kubernetes: `worker` takes outbound, verification and default; `worker-background` takes sweeps
and reports). docs/workers.md describes the layout.

A task missing from ROUTES would land on `default`; tests/ops/test_queues.py fails when any
registered task is not routed here, so a new task is placed on purpose.
"""

from __future__ import annotations

# Notifications and the outbox: every outbound call (webhooks, chat, pipeline answers and
# callbacks, rollback hooks) goes through these two tasks or the pipeline answerer.
OUTBOUND = "outbound"
# Timed work over many rows: expiry, reminders, escalations, re-resolution, review chasing,
# meeting preparation, the quarterly campaigns.
SWEEPS = "sweeps"
# Long reads that write files or rollups: exports, metrics, the data lake, anomaly detection.
REPORTS = "reports"
# Health polls of fresh deployments, and the ledger's verification and checkpoints.
VERIFICATION = "verification"
# Where an unrouted task would go; it should stay empty.
DEFAULT = "default"

QUEUE_NAMES = (OUTBOUND, VERIFICATION, SWEEPS, REPORTS, DEFAULT)

_TASKS_BY_QUEUE = {
    OUTBOUND: (
        "governance.tasks.deliver_outbox_task",
        "governance.tasks.deliver_notifications_task",
        "approvals.pipelines.tasks.answer_waiting_pipelines_task",
    ),
    SWEEPS: (
        "governance.tasks.expire_role_grants_task",
        "governance.tasks.start_access_review_task",
        "approvals.tasks.reresolve_open_stages_task",
        "approvals.tasks.expire_requests_task",
        "approvals.tasks.remind_due_stages_task",
        "approvals.tasks.escalate_overdue_stages_task",
        "approvals.cab.tasks.prepare_cab_meetings_task",
        "changes.reviews.tasks.chase_reviews_task",
        "reporting.reviews.tasks.start_quarterly_review_task",
    ),
    REPORTS: (
        "reporting.tasks.compliance_export_task",
        "reporting.metrics.tasks.refresh_metrics_task",
        "reporting.lake.tasks.export_lake_task",
        "reporting.anomalies.tasks.detect_anomalies_task",
    ),
    VERIFICATION: (
        "approvals.verification.tasks.verify_deployments_task",
        "governance.tasks.verify_ledger_task",
        "governance.tasks.verify_ledger_nightly_task",
        "governance.tasks.write_ledger_checkpoint_task",
    ),
}

# Celery's `task_routes`: task name -> {"queue": name}.
ROUTES = {task: {"queue": queue} for queue, tasks in _TASKS_BY_QUEUE.items() for task in tasks}
