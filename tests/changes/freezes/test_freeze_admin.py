"""Freezes in the Django admin: shown, never changed there (the pages ledger every change)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from changes.models import Freeze
from governance.models import User


@pytest.fixture
def superuser_client(client, administrator):
    User.objects.filter(pk=administrator.pk).update(is_superuser=True, is_staff=True)
    client.force_login(User.objects.get(pk=administrator.pk))
    return client


def test_freezes_are_read_only_in_the_admin(superuser_client, make_freeze):
    freeze = make_freeze(name="Quarter close")
    change = reverse("admin:changes_freeze_change", args=[freeze.pk])

    assert (
        "Quarter close"
        in superuser_client.get(reverse("admin:changes_freeze_changelist")).content.decode()
    )
    assert superuser_client.get(reverse("admin:changes_freeze_add")).status_code == 403
    superuser_client.post(change, {"name": "Renamed"})
    assert (
        superuser_client.post(reverse("admin:changes_freeze_delete", args=[freeze.pk])).status_code
        == 403
    )
    assert Freeze.objects.get().name == "Quarter close"
    assert (
        superuser_client.get(reverse("admin:changes_freezeoverride_changelist")).status_code == 200
    )
