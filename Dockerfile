# Signoff's image: one image for every process (web, worker, beat, migrations); compose.yaml
# and deploy/kubernetes/signoff/ choose the command. docs/deployment.md: how to build and run it.

# python:3.11.16-slim-bookworm, pinned by the digest of its multi-platform index as
# docker-library/repo-info records it (repos/python/remote/3.11.16-slim-bookworm.md): the tag
# alone moves whenever Debian or Python publish a fix. Bump both together, on purpose.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SIGNOFF_VAR_DIR=/app/var \
    PORT=8000

# A fixed, unprivileged id: Kubernetes' runAsUser and the volumes' ownership name it.
RUN groupadd --system --gid 10001 signoff \
    && useradd --system --uid 10001 --gid signoff --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin signoff

# Dependencies before the code, so that a code change reuses this layer. The runtime lock is the
# part of requirements.lock (a full `pip freeze`) that production needs, without the test tools
# (bin/runtime-lock), so nothing is resolved here: --no-deps installs exactly those pins, and
# `pip check` proves they are complete. Every binary package in it ships a manylinux wheel, so
# the slim image needs no compiler.
COPY requirements-runtime.lock /tmp/requirements.lock
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --no-deps --requirement /tmp/requirements.lock \
    && pip check \
    && rm /tmp/requirements.lock

WORKDIR /app
# Owned by root and not writable by the app's user: a compromised process cannot change code.
COPY . /app

# Static files are collected into the image (WhiteNoise serves them with hashed names from the
# manifest). Settings refuse to load without production secrets when DEBUG is off, so this one
# step gets throwaway values made on the spot: they live only in this RUN's environment, never in
# an ENV of the image, and sign nothing. The filesystem broker folders settings create without
# REDIS_URL are removed again.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    LEDGER_SIGNING_KEY="$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')" \
    DEBUG=false ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --no-input --verbosity 0 \
    && rm -rf /app/var/broker \
    && python -m compileall -q /app/approvals /app/changes /app/config /app/governance /app/reporting \
    && mkdir -p /data \
    && chown signoff:signoff /data

# Shared, persistent files (background reports, ledger checkpoints, the data-lake folder): a
# volume in compose, a PersistentVolumeClaim in Kubernetes.
ENV MEDIA_ROOT=/data/media \
    LEDGER_CHECKPOINT_DIR=/data/checkpoints \
    SIGNOFF_LAKE_DIR=/data/lake

USER signoff:signoff
EXPOSE 8000

# Liveness of the web process. Host: localhost, as ALLOWED_HOSTS must list it for probes
# (Django answers 400 to a host it does not know). Worker and beat override or disable this.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(urllib.request.Request(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", headers={'Host': 'localhost'}), timeout=4)"]

CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
