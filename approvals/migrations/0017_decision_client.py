from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("approvals", "0016_release_digest_index")]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="client_address",
            field=models.GenericIPAddressField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="decision",
            name="client_device",
            field=models.CharField(
                blank=True,
                help_text="SHA-256 of the User-Agent, first 16 hex digits.",
                max_length=16,
            ),
        ),
    ]
