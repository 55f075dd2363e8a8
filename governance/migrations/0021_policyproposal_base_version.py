from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Coalesce


def base_on_the_version_in_force_when_proposed(apps, schema_editor):
    """Each existing proposal was made against the latest version published before it."""
    PolicyProposal = apps.get_model("governance", "PolicyProposal")
    PolicyVersion = apps.get_model("governance", "PolicyVersion")
    in_force = (
        PolicyVersion.objects.filter(
            policy=OuterRef("policy"), created_at__lte=OuterRef("proposed_at")
        )
        .values("policy")
        .annotate(number=Max("number"))
        .values("number")
    )
    PolicyProposal.objects.update(base_version=Coalesce(Subquery(in_force), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0020_metrics_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="policyproposal",
            name="base_version",
            field=models.PositiveIntegerField(
                default=0,
                help_text="The policy's version this change was proposed against. Once another "
                "version is published, the proposal is stale: its diff and loosening were judged "
                "against rules no longer in force, so it can only be rejected and proposed again.",
            ),
        ),
        migrations.RunPython(
            base_on_the_version_in_force_when_proposed, migrations.RunPython.noop, elidable=True
        ),
    ]
