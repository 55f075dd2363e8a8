import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reporting", "0004_anomalies")]

    operations = [
        migrations.CreateModel(
            name="LakeWatermark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("destination", models.CharField(max_length=100, unique=True)),
                (
                    "last_seq",
                    models.BigIntegerField(default=0, help_text="The last ledger seq exported."),
                ),
                (
                    "pending_through",
                    models.BigIntegerField(
                        blank=True,
                        help_text="End of the batch being written, if one is under way.",
                        null=True,
                    ),
                ),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["destination"]},
        ),
        migrations.CreateModel(
            name="LakeExport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("destination", models.CharField(max_length=100)),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                        default="running",
                        max_length=10,
                    ),
                ),
                (
                    "from_seq",
                    models.BigIntegerField(help_text="The watermark when the run began."),
                ),
                (
                    "through_seq",
                    models.BigIntegerField(help_text="The watermark when the run ended."),
                ),
                ("entries", models.BigIntegerField(default=0, help_text="Ledger entries read.")),
                (
                    "events",
                    models.BigIntegerField(
                        default=0, help_text="Events written (exported kinds only)."
                    ),
                ),
                (
                    "files",
                    models.JSONField(
                        default=list, help_text="Names of the files written, in order."
                    ),
                ),
                ("error", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["-started_at", "-pk"],
                "indexes": [
                    models.Index(fields=["destination", "-started_at"], name="lake_run_latest")
                ],
            },
        ),
    ]
