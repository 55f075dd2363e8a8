"""gunicorn's settings for the web process (the container's and the manifests' command):
`gunicorn -c config/gunicorn.conf.py config.wsgi`. Each is overridable from the environment."""

import os

from config.logs import gunicorn_logconfig

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
# Behind a load balancer: keep-alive longer than its idle timeout avoids reset connections.
keepalive = 75
accesslog = "-"
# Workers' heartbeat files in memory: the container's root filesystem is read-only, and a
# disk-backed /tmp can stall a heartbeat long enough for the arbiter to kill a healthy worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No runtime control socket (gunicornc): under $HOME, which is read-only in the container and
# shared by every gunicorn of a user elsewhere. Kubernetes and compose restart and scale instead.
control_socket_disable = True
# The master process logs the same JSON lines as Django and Celery (config/logs.py).
logconfig_dict = gunicorn_logconfig()
