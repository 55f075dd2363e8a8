"""The quarterly review of exceptions, bypasses, overdue post-mortems and unapproved deployments,
and requesters' feedback on the workflow."""
