from django.urls import path

from reporting.ledger import views

urlpatterns = [
    path("reports/ledger.jsonl", views.ledger_export, name="ledger_export"),
    path("reports/ledger/", views.ledger_page, name="ledger"),
    path("reports/ledger/public-key.pem", views.ledger_public_key, name="ledger_public_key"),
    path("reports/ledger/verify_ledger.py", views.ledger_verifier, name="ledger_verifier"),
    path("reports/ledger/verify/", views.ledger_verify, name="ledger_verify"),
    path(
        "reports/ledger/verifications/<int:pk>/",
        views.ledger_verification,
        name="ledger_verification",
    ),
]
