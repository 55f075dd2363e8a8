"""Celery application: settings under the CELERY namespace, tasks autodiscovered per app."""

import os

from celery import Celery

from config import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("signoff")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logs.connect_celery(app)
