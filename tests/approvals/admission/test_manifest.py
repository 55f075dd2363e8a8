"""The shipped ValidatingWebhookConfiguration sends exactly what the webhook checks, and the
kube-apiserver files are what the API server reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from approvals.admission.review import POD_SPEC_PATHS

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
PLURALS = {
    "Pod": ("", "pods"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "ReplicaSet": ("apps", "replicasets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
}


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_the_webhook_configuration_fails_closed_fast_and_without_dry_run_effects():
    config = load("signoff-admission.yaml")
    [webhook] = config["webhooks"]

    assert (config["apiVersion"], config["kind"]) == (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    )
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["sideEffects"] == "NoneOnDryRun"
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["clientConfig"]["url"].startswith("https://")
    assert webhook["clientConfig"]["url"].endswith("/integrations/kubernetes/prod-eu-1/admission")
    assert webhook["namespaceSelector"]["matchExpressions"][0]["key"] == (
        "kubernetes.io/metadata.name"
    )


def test_the_rules_send_every_kind_the_webhook_checks_and_ephemeral_containers():
    [webhook] = load("signoff-admission.yaml")["webhooks"]
    sent = {
        (group, resource)
        for rule in webhook["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        if rule["operations"] == ["CREATE", "UPDATE"]
    }

    assert {PLURALS[kind] for kind in POD_SPEC_PATHS} | {("", "pods/ephemeralcontainers")} == sent


def test_kube_apiserver_finds_the_token_through_its_admission_configuration():
    admission = load("admission-configuration.yaml")
    kubeconfig = load("webhook-kubeconfig.yaml")

    [plugin] = admission["plugins"]
    assert plugin["name"] == "ValidatingAdmissionWebhook"
    assert plugin["configuration"]["kind"] == "WebhookAdmissionConfiguration"
    assert plugin["configuration"]["kubeConfigFile"].endswith("webhook-kubeconfig.yaml")
    assert kubeconfig["users"][0]["name"] == "signoff.example.com"
    assert set(kubeconfig["users"][0]["user"]) == {"token"}
