"""manage.py register_cluster: register or update a cluster and print its token once."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from approvals.admission.services import token_digest
from governance.models import LedgerEntry, Target


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("register_cluster", *args, stdout=out)
    return out.getvalue()


def token_in(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("token: "))[7:]


def test_registering_prints_the_token_and_the_kubeconfig_once(production):
    output = run(
        "prod-eu-1",
        "--environment",
        "production",
        "--namespace",
        "payments",
        "--namespace",
        "checkout",
    )

    token = token_in(output)
    cluster = Target.objects.get(slug="prod-eu-1")
    assert (cluster.platform, cluster.namespaces) == ("kubernetes", ["checkout", "payments"])
    assert cluster.token_digest == token_digest(token)
    assert output == (
        "Registered prod-eu-1 (Production); governed namespaces: checkout, payments.\n"
        "Webhook URL: http://localhost:8000/integrations/kubernetes/prod-eu-1/admission\n"
        f"token: {token}\n"
        "Kubeconfig for kube-apiserver's AdmissionConfiguration (shown once):\n"
        "apiVersion: v1\n"
        "kind: Config\n"
        "users:\n"
        '- name: "localhost:8000"\n'
        "  user:\n"
        f'    token: "{token}"\n'
    )
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.subject, entry.actor) == (
        "cluster.registered",
        "cluster:prod-eu-1",
        "manage.py",
    )
    assert token not in str(entry.payload)


def test_registering_again_updates_and_keeps_the_token(production, staging):
    token = token_in(run("prod-eu-1", "--environment", "production", "--namespace", "payments"))

    output = run("prod-eu-1", "--environment", "staging", "--namespace", "web", "--reason", "Moved")

    cluster = Target.objects.get(slug="prod-eu-1")
    assert output.splitlines()[-1] == "Token unchanged (give --rotate-token for a new one)."
    assert (cluster.environment, cluster.namespaces) == (staging, ["web"])
    assert cluster.token_digest == token_digest(token)
    assert LedgerEntry.objects.order_by("seq").last().payload["changed"] == [
        "environment",
        "namespaces",
    ]


def test_rotating_the_token_replaces_it(production):
    first = token_in(run("prod-eu-1", "--environment", "production", "--namespace", "payments"))

    second = token_in(
        run("prod-eu-1", "--environment", "production", "--namespace", "payments", "--rotate-token")
    )

    assert second != first
    assert Target.objects.get(slug="prod-eu-1").token_digest == token_digest(second)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["x", "--environment", "nowhere", "--namespace", "a"],
            "No environment 'nowhere' (known: production).",
        ),
        (
            ["x", "--environment", "production", "--namespace", "Bad_NS"],
            "Not a namespace name: Bad_NS (lower-case letters, digits and '-', 63 at most, "
            "starting and ending with a letter or digit).",
        ),
        (
            ["...", "--environment", "production", "--namespace", "a"],
            "A cluster's name is 1 to 100 printable characters giving a slug of 50 at most "
            "(letters, digits, '-').",
        ),
    ],
)
def test_bad_arguments_are_refused_and_register_nothing(args, message, production):
    with pytest.raises(CommandError) as refused:
        run(*args)

    assert str(refused.value) == message
    assert not Target.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_the_same_registration_again_changes_nothing(production):
    run("prod-eu-1", "--environment", "production", "--namespace", "payments")

    output = run("prod-eu-1", "--environment", "production", "--namespace", "payments")

    assert output.startswith("Updated prod-eu-1 (Production); governed namespaces: payments.")
    assert LedgerEntry.objects.count() == 1
