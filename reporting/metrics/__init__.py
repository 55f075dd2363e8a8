"""Approval metrics: time to approve, bottlenecks, SLA attainment, abandonment, outcomes by delay;
pages per audience with charts and CSV."""
