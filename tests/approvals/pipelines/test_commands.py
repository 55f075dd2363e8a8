"""`configure_integration github|gitlab` and `map_external github|gitlab`: ledgered, secrets
masked, bad input refused with nothing written."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from approvals.pipelines.models import PipelineIntegration, RepositoryMapping
from governance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db
SECRET = "github-webhook-secret-abcd"
TOKEN = "gitlab-webhook-token-wxyz"
API_TOKEN = "glpat-xxxxxxxxxxxx9876"


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_github_is_configured_and_shown_masked(db):
    output = run(
        "configure_integration",
        "github",
        "--secret",
        SECRET,
        "--api-url",
        "https://api.github.com/",
    )

    assert output == ("GitHub: secret …abcd, API https://api.github.com, opens releases: no.\n")
    integration = PipelineIntegration.objects.get(provider="github")
    assert (integration.webhook_secret, integration.api_url) == (SECRET, "https://api.github.com")
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert (entry.subject, entry.actor) == ("integration:github", "manage.py")
    assert entry.payload == {
        "provider": "github",
        "secret": "…abcd",
        "api_url": "https://api.github.com",
        "api_token": "",
        "open_releases": False,
        "before": {"secret": "", "api_url": "", "api_token": "", "open_releases": False},
    }
    assert SECRET not in str(entry.payload)


def test_gitlab_keeps_only_the_webhook_tokens_digest(db):
    output = run(
        "configure_integration",
        "gitlab",
        "--secret",
        TOKEN,
        "--api-url",
        "https://gitlab.example.com",
        "--api-token",
        API_TOKEN,
        "--open-releases",
        "--reason",
        "Deployment approvals for payments",
    )

    assert output == (
        "GitLab: secret …wxyz, API https://gitlab.example.com, API token …9876, "
        "opens releases: yes.\n"
    )
    integration = PipelineIntegration.objects.get(provider="gitlab")
    assert integration.token_digest == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert integration.webhook_secret == ""
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert entry.payload["reason"] == "Deployment approvals for payments"
    assert TOKEN not in str(entry.payload) and API_TOKEN not in str(entry.payload)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret", "short"], "secret: 16 to 200 printable characters, no spaces."),
        (["--api-url", "ftp://example.com"], "api_url: An http(s) URL with a host"),
        ([], "Nothing to change"),
        (["--secret", SECRET, "--secret", SECRET + "2"], "give --secret once"),
        (["--api-token", API_TOKEN], "--api-token is for GitLab"),
    ],
)
def test_bad_github_configuration_is_refused_and_nothing_is_written(db, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("configure_integration", "github", *args)

    assert (PipelineIntegration.objects.count(), LedgerEntry.objects.count()) == (0, 0)


def test_a_repository_is_mapped_and_can_be_moved(service, other_service):
    assert run("map_external", "github", "acme/payments-api", "payments-api") == (
        "github acme/payments-api → payments-api\n"
    )
    run("map_external", "github", "ACME/Payments-API", "billing", "--actor", "ada")

    mapping = RepositoryMapping.objects.get()
    assert (mapping.repository, mapping.service) == ("acme/payments-api", other_service)
    entries = LedgerEntry.objects.filter(kind="integration.mapped").order_by("seq")
    assert [(e.actor, e.payload["before"], e.payload["service"]) for e in entries] == [
        ("manage.py", None, "payments-api"),
        ("ada", "payments-api", "billing"),
    ]


def test_a_gitlab_subgroup_project_is_mapped(service):
    run("map_external", "gitlab", "acme/payments/api", "payments-api")

    assert RepositoryMapping.objects.get().repository == "acme/payments/api"


@pytest.mark.parametrize("repository", ["payments-api", "acme/pay ments", "../etc"])
def test_a_name_that_is_not_a_repository_is_refused(service, repository):
    with pytest.raises(CommandError, match="owner/repo"):
        run("map_external", "github", repository, "payments-api")

    assert (RepositoryMapping.objects.count(), LedgerEntry.objects.count()) == (0, 0)
