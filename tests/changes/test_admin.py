"""Change records in the Django admin: evidence, not a way around the approval rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from changes.models import ChangeRecord
from governance.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client, administrator):
    User.objects.filter(pk=administrator.pk).update(is_superuser=True, is_staff=True)
    client.force_login(User.objects.get(pk=administrator.pk))
    return client


def test_a_change_cannot_be_edited_in_the_admin(superuser_client, production_release, approver):
    change = production_release.change
    url = reverse("admin:changes_changerecord_change", args=[change.pk])

    response = superuser_client.post(
        url,
        {
            "title": "Renamed",
            "external_url": "",
            "author": approver.pk,
            "type": "emergency",
        },
    )

    assert response.status_code == 403
    change = ChangeRecord.objects.get(pk=change.pk)
    assert (change.title, change.author.username, change.type) == (
        production_release.change.title,
        "dave",
        "normal",
    )


def test_change_records_are_neither_added_nor_deleted_in_the_admin(
    superuser_client, production_release
):
    change = production_release.change
    assert superuser_client.get(reverse("admin:changes_changerecord_add")).status_code == 403
    delete = reverse("admin:changes_changerecord_delete", args=[change.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    listing = superuser_client.get(reverse("admin:changes_changerecord_changelist"))
    assert "delete_selected" not in listing.content.decode()
    assert ChangeRecord.objects.filter(pk=change.pk).exists()
