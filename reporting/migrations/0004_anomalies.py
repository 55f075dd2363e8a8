import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0003_reviews"),
        ("governance", "0019_integrations_outbox"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AnomalyAlert",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("rubber_stamp", "Rubber-stamping"),
                            ("off_hours", "Far outside usual hours"),
                            ("volume_spike", "Volume spike"),
                            ("reciprocity", "Reciprocal approvals"),
                            ("never_rejects", "Never rejects"),
                            ("new_client", "Step-up from a new device or address"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "fingerprint",
                    models.CharField(
                        help_text="kind:subject:period; the same finding twice is one.",
                        max_length=200,
                        unique=True,
                    ),
                ),
                ("window_start", models.DateTimeField()),
                ("window_end", models.DateTimeField()),
                ("summary", models.CharField(max_length=300)),
                (
                    "evidence",
                    models.JSONField(
                        default=dict, help_text="The decisions and releases behind it."
                    ),
                ),
                (
                    "severity",
                    models.CharField(
                        choices=[("low", "Low"), ("medium", "Medium"), ("high", "High")],
                        max_length=10,
                    ),
                ),
                (
                    "raised_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("open", "Open"), ("acknowledged", "Acknowledged")],
                        default="open",
                        max_length=15,
                    ),
                ),
                ("acknowledged_at", models.DateTimeField(blank=True, null=True)),
                ("note", models.TextField(blank=True)),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "counterpart",
                    models.ForeignKey(
                        blank=True,
                        help_text="The other person of a reciprocal pair.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "person",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "team",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="governance.team",
                    ),
                ),
            ],
            options={
                "ordering": ["-raised_at", "-pk"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("person__isnull", False), ("team__isnull", False), _connector="OR"
                        ),
                        name="anomaly_about_a_person_or_a_team",
                    )
                ],
            },
        ),
    ]
