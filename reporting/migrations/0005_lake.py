from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("reporting", "0004_anomalies")]

    operations: list = []
