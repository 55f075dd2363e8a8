import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0002_metrics"),
        ("approvals", "0017_decision_client"),
        ("governance", "0019_integrations_outbox"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="QuarterlyReview",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("quarter_start", models.DateField(help_text="First day of the quarter reviewed.", unique=True)),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("due_at", models.DateTimeField()),
                ("closed_at", models.DateTimeField(blank=True, null=True)),
                ("closing_note", models.TextField(blank=True)),
                ("left_open", models.JSONField(blank=True, default=list, help_text="Items still without an outcome when it was closed.")),
                ("closed_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("started_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-quarter_start"]},
        ),
        migrations.CreateModel(
            name="WorkflowFeedback",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("rating", models.CharField(choices=[("useful", "Useful"), ("noise", "Noise")], max_length=10)),
                ("comment", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("rated_by", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("release", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="approvals.release")),
            ],
            options={"ordering": ["-updated_at", "-pk"]},
        ),
        migrations.CreateModel(
            name="QuarterlyReviewItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("kind", models.CharField(choices=[("freeze_override", "Policy exception (freeze override)"), ("emergency", "Emergency bypass"), ("late_post_mortem", "Overdue post-mortem"), ("unapproved_deployment", "Unapproved deployment")], max_length=25)),
                ("source_id", models.PositiveBigIntegerField()),
                ("title", models.CharField(max_length=300)),
                ("detail", models.TextField(blank=True)),
                ("occurred_at", models.DateTimeField()),
                ("url", models.CharField(blank=True, help_text="Path of the page it is about.", max_length=300)),
                ("involved", models.JSONField(default=list, help_text="Ids of the people whose act it is: they record no outcome on it.")),
                ("involved_names", models.CharField(blank=True, max_length=300)),
                ("outcome", models.CharField(choices=[("pending", "To review"), ("accepted", "Accepted"), ("follow_up", "Follow-up required"), ("control_changed", "Control changed")], default="pending", max_length=20)),
                ("note", models.TextField(blank=True)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                ("decided_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                ("review", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="items", to="reporting.quarterlyreview")),
                ("service", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="governance.service")),
            ],
            options={
                "ordering": ["review", "kind", "occurred_at", "pk"],
                "constraints": [models.UniqueConstraint(fields=("review", "kind", "source_id"), name="one_quarterly_item_per_act")],
            },
        ),
    ]
