#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config.env import FRESH_CLONE_NOTICE, is_unconfigured

    if is_unconfigured():
        # A fresh clone's commands (`manage.py check` before `make run` wrote .env) run as
        # development, in this process and its children only. No file is written: gunicorn and
        # Celery never start through manage.py, so they still refuse to run unconfigured.
        os.environ["DEBUG"] = "true"
        print(FRESH_CLONE_NOTICE, file=sys.stderr)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
