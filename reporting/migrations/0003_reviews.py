from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("reporting", "0002_metrics")]

    operations: list = []
