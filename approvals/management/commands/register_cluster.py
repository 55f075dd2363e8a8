"""Register a Kubernetes cluster (or update one) and print the token its kube-apiserver sends.

The token is printed once, inside the kubeconfig snippet kube-apiserver reads; only its digest
is stored. Registering again keeps the token unless --rotate-token is given. Ledgered.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from approvals.admission import services
from governance.models import Environment


class Command(BaseCommand):
    help = (
        "Register a Kubernetes cluster as a target of an environment, e.g. `register_cluster "
        "prod-eu-1 --environment production --namespace payments --namespace checkout`; prints "
        "the bearer token for the admission webhook's kubeconfig (a new cluster, or with "
        "--rotate-token)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The cluster's name; its slug names the webhook URL.")
        parser.add_argument("--environment", required=True, help="The environment's slug.")
        parser.add_argument(
            "--namespace",
            action="append",
            dest="namespaces",
            required=True,
            help="A governed namespace (repeat for more); the list replaces the stored one.",
        )
        parser.add_argument(
            "--rotate-token",
            action="store_true",
            help="Issue a new token for an existing cluster (the old one stops working).",
        )
        parser.add_argument("--reason", default="", help="Why, for the ledger.")
        parser.add_argument("--actor", default="manage.py", help="Who did it, for the ledger.")

    def handle(self, *args, name: str, environment: str, **options) -> None:
        env = Environment.objects.filter(slug=environment).first()
        if env is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No environment {environment!r} (known: {known}).")
        try:
            registration = services.register_cluster(
                name=name,
                environment=env,
                namespaces=options["namespaces"],
                rotate_token=options["rotate_token"],
                actor=options["actor"],
                reason=options["reason"],
            )
        except services.InvalidCluster as exc:
            raise CommandError(exc.message) from None
        cluster = registration.cluster
        verb = "Registered" if registration.created else "Updated"
        self.stdout.write(
            f"{verb} {cluster.name} ({env.name}); governed namespaces: "
            f"{', '.join(cluster.namespaces)}."
        )
        self.stdout.write(
            f"Webhook URL: {settings.SITE_URL}/integrations/kubernetes/{cluster.slug}/admission"
        )
        if registration.token is None:
            self.stdout.write("Token unchanged (give --rotate-token for a new one).")
            return
        self.stdout.write(f"token: {registration.token}")
        self.stdout.write(
            "Kubeconfig for kube-apiserver's AdmissionConfiguration (shown once):\n"
            + services.webhook_kubeconfig(registration.token).rstrip("\n")
        )
