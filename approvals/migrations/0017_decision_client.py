from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("approvals", "0016_release_digest_index")]

    operations: list = []
