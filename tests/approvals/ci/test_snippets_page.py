"""The snippets on the Integrations page are the files we ship and test, character for
character, and the page links the client."""

from __future__ import annotations

import html
import re

import pytest
from django.template import TemplateSyntaxError
from django.template.loader import render_to_string

from approvals.templatetags.pipeline_tags import shipped_file
from tests.approvals.ci.test_snippets import ROOT

pytestmark = pytest.mark.django_db
PARTIAL = "approvals/pipelines/partials/_pipeline_snippets.html"
SHIPPED = [
    "docs/ci/github-actions.yml",
    "docs/ci/gitlab-ci.yml",
    "docs/ci/azure-pipelines.yml",
    "tools/jenkins/vars/signoffGate.groovy",
    "docs/ci/Jenkinsfile",
]
SNIPPET = re.compile(r'data-snippet="([^"]+)"><code>(.*?)</code></pre>', re.S)


def test_the_partial_shows_every_shipped_snippet_as_it_is():
    page = render_to_string(PARTIAL)

    shown = {path: html.unescape(text) for path, text in SNIPPET.findall(page)}

    assert list(shown) == SHIPPED
    for path in SHIPPED:
        assert shown[path] == (ROOT / path).read_text(), f"{PARTIAL} shows an old {path}"


def test_the_partial_links_the_client_and_shows_the_checks_configuration():
    page = render_to_string(PARTIAL)

    assert 'href="/integrations/signoff-gate" download' in page
    assert '<td class="mono">integrations/azure/check</td>' in page
    assert "integrations/azure/gate?environment=production&amp;run_url=" in page
    assert """<td class="mono">eq(root['status'], 'approved')</td>""" in page
    headers = re.search(r'data-testid="azure-check-headers"><code>(.*?)</code>', page, re.S)
    assert '"AuthToken": "$(system.AccessToken)"' in html.unescape(headers.group(1))
    assert "{%" not in page and "{#" not in page and "{{" not in page.replace("${{", "")


def test_the_integrations_page_includes_the_snippets(client, outsider):
    client.force_login(outsider)

    response = client.get("/approvals/integrations/")

    assert response.status_code == 200
    assert b'data-testid="pipeline-snippets"' in response.content
    assert b'data-snippet="docs/ci/github-actions.yml"' in response.content


def test_the_integrations_page_needs_a_sign_in(client):
    response = client.get("/approvals/integrations/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_only_shipped_snippet_files_can_be_shown():
    for path in ("config/settings.py", ".env", "docs/ci/../../.env"):
        with pytest.raises(TemplateSyntaxError):
            shipped_file(path)


def test_the_readme_shows_every_shipped_snippet_as_it_is():
    readme = (ROOT / "README.md").read_text()
    shown = dict(
        re.findall(r"<code>([^<]+)</code>\)</summary>\n\n```[a-z]+\n(.*?)\n```", readme, re.S)
    )
    assert sorted(shown) == sorted(SHIPPED)
    for path in SHIPPED:
        assert shown[path] == (ROOT / path).read_text().rstrip(), f"README shows an old {path}"
