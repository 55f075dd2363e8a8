from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("reporting", "0001_initial")]

    operations: list = []
