"""In the browser: an administrator registers a cluster and copies its kubeconfig; after the
cluster's kube-apiserver admits a release's digest, the release page shows where it runs."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from approvals.admission.services import register_cluster
from tests.approvals.admission.conftest import pinned, review
from tests.browser.test_accessibility import Scan
from tests.browser.test_approval_flow import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def admit(base: str, slug: str, token: str, body: dict) -> dict:
    """POST an AdmissionReview to the live server as kube-apiserver does."""
    request = urllib.request.Request(
        f"{base}/integrations/kubernetes/{slug}/admission",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["response"]


def test_clusters_and_the_promotion_of_a_release(
    page: Page, live_server, approve, service, staging, production, administrator
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    scan = Scan(page, base)
    staged = approve(service, staging, image="registry.example.com/payments/api")
    released = approve(service, production, image=staged.image, digest=staged.digest)
    stage = register_cluster(
        name="stage-eu-1", environment=staging, namespaces=["payments"], actor="ada"
    )
    register_cluster(name="prod-us-1", environment=production, namespaces=["payments"], actor="ada")
    sign_in(page, base, "ada")

    scan.check("clusters", "/approvals/integrations/clusters/")
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#id_reason")).to_have_attribute("aria-invalid", "true")
    scan.check("clusters, refused")
    page.fill("#id_name", "prod-eu-1")
    page.select_option("#id_environment", value="production")
    page.fill("#id_namespaces", "payments\ncheckout")
    page.fill("#id_reason", "EU production cluster")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_test_id("registered")).to_contain_text("Registered prod-eu-1")
    kubeconfig = page.get_by_test_id("kubeconfig").inner_text()
    token = kubeconfig.split('token: "')[1].split('"')[0]
    scan.check("clusters, registered")

    deployment = review("Deployment", [pinned(staged)], name="payments-api")
    assert admit(base, "stage-eu-1", stage.token, deployment)["allowed"] is True
    production_deployment = review("Deployment", [pinned(released)], name="payments-api")
    assert admit(base, "prod-eu-1", token, production_deployment)["allowed"] is True
    denied = admit(base, "prod-eu-1", token, review("Pod", ["nginx:1.27"], name="debug"))
    assert denied["allowed"] is False
    page.goto(f"{base}/approvals/integrations/clusters/")
    expect(page.get_by_test_id("cluster-row")).to_have_count(3)
    page.screenshot(path=SCREENSHOTS / "clusters.png", full_page=True)

    scan.check("release promotion", f"/approvals/releases/{released.pk}/")
    promotion = page.get_by_test_id("release-promotion")
    expect(promotion.get_by_test_id("promotion-row")).to_have_count(2)
    expect(promotion).to_contain_text("stage-eu-1")
    expect(promotion).to_contain_text("Deployment/payments-api")
    expect(page.get_by_test_id("promotion-waiting")).to_contain_text("prod-us-1")
    promotion.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "release-promotion.png", full_page=True)
    promotion.screenshot(path=SCREENSHOTS / "release-promotion-card.png")
    scan.assert_clean()
