# The metrics rollups: facts per closed request, finished stage and standing decision.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0001_initial"),
        ("approvals", "0017_decision_client"),
        ("governance", "0019_integrations_outbox"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricsRefresh",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "refreshed_through",
                    models.DateTimeField(
                        help_text="Every change made before this time is in the rollups."
                    ),
                ),
                ("finished_at", models.DateTimeField()),
                (
                    "releases",
                    models.PositiveIntegerField(
                        default=0, help_text="Releases rebuilt by the last run."
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="DecisionFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("change_type", models.CharField(max_length=20)),
                ("stage_key", models.CharField(max_length=50)),
                ("verdict", models.CharField(max_length=10)),
                ("decided_at", models.DateTimeField()),
                ("wait_seconds", models.BigIntegerField()),
                (
                    "approver",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "decision",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="approvals.decision",
                    ),
                ),
                (
                    "environment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.environment",
                    ),
                ),
                (
                    "release",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="approvals.release",
                    ),
                ),
                (
                    "service",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.service",
                    ),
                ),
                (
                    "team",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="governance.team",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["decided_at"], name="metrics_decision_decided_idx")
                ],
            },
        ),
        migrations.CreateModel(
            name="ReleaseFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("change_type", models.CharField(max_length=20)),
                ("requested_at", models.DateTimeField()),
                ("decided_at", models.DateTimeField()),
                ("outcome", models.CharField(max_length=10)),
                (
                    "abandonment",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("superseded", "Superseded by a new request"),
                            ("withdrawn", "Withdrawn"),
                            ("expired", "Expired"),
                            ("never_decided", "Never decided"),
                        ],
                        max_length=15,
                    ),
                ),
                ("approve_seconds", models.BigIntegerField(null=True)),
                (
                    "delay_bucket",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("lt1h", "Under 1 hour"),
                            ("1-4h", "1 to 4 hours"),
                            ("4-24h", "4 to 24 hours"),
                            ("1-3d", "1 to 3 days"),
                            ("gt3d", "Over 3 days"),
                        ],
                        max_length=5,
                    ),
                ),
                ("deployed", models.BooleanField(default=False)),
                ("failed", models.BooleanField(default=False)),
                ("rolled_back", models.BooleanField(default=False)),
                (
                    "environment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.environment",
                    ),
                ),
                (
                    "release",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="approvals.release",
                    ),
                ),
                (
                    "service",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.service",
                    ),
                ),
                (
                    "team",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="governance.team",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["decided_at"], name="metrics_release_decided_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("release",), name="metrics_one_release_fact")
                ],
            },
        ),
        migrations.CreateModel(
            name="StageFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("change_type", models.CharField(max_length=20)),
                ("key", models.CharField(max_length=50)),
                ("name", models.CharField(max_length=100)),
                ("outcome", models.CharField(max_length=10)),
                ("activated_at", models.DateTimeField()),
                ("completed_at", models.DateTimeField()),
                ("wait_seconds", models.BigIntegerField()),
                ("sla_seconds", models.BigIntegerField(null=True)),
                ("breached", models.BooleanField(default=False)),
                (
                    "environment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.environment",
                    ),
                ),
                (
                    "release",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="approvals.release",
                    ),
                ),
                (
                    "service",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="governance.service",
                    ),
                ),
                (
                    "stage",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="approvals.approvalstage",
                    ),
                ),
                (
                    "team",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="governance.team",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["completed_at"], name="metrics_stage_completed_idx")
                ],
            },
        ),
    ]
