"""The profile page: working hours, and enrolling the step-up authenticator used at approval."""

from __future__ import annotations

import base64

import pyotp
import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.identity.stepup import verify_step_up
from governance.models import LedgerEntry

pytestmark = pytest.mark.django_db


def current_code(device: TOTPDevice) -> str:
    return pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()


def test_profile_needs_sign_in(client):
    response = client.get(reverse("governance:profile"))
    assert response.status_code == 302


def test_working_hours_are_saved_and_validated(client, approver):
    client.force_login(approver)
    url = reverse("governance:profile")
    bad = client.post(
        url,
        {
            "action": "profile",
            "time_zone": "Europe/London",
            "working_hours_start": 18,
            "working_hours_end": 9,
        },
    )
    assert bad.status_code == 400
    approver.refresh_from_db()
    assert approver.time_zone == "UTC"
    good = client.post(
        url,
        {
            "action": "profile",
            "time_zone": "Asia/Tokyo",
            "working_hours_start": 8,
            "working_hours_end": 16,
        },
    )
    assert good.status_code == 302
    approver.refresh_from_db()
    assert (approver.time_zone, approver.working_hours_start, approver.working_hours_end) == (
        "Asia/Tokyo",
        8,
        16,
    )


def test_enrolment_shows_a_qr_code_and_confirms_with_a_current_code(client, approver):
    client.force_login(approver)
    url = reverse("governance:profile")
    page = client.get(url).content.decode()
    assert "<svg" in page and 'data-testid="totp-secret"' in page
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    assert client.get(url).status_code == 200
    assert TOTPDevice.objects.filter(user=approver).count() == 1  # the same QR until confirmed

    wrong = client.post(url, {"action": "confirm", "code": "000000"})
    assert wrong.status_code == 400
    assert not TOTPDevice.objects.filter(user=approver, confirmed=True).exists()

    device.refresh_from_db()
    device.throttle_reset()
    response = client.post(url, {"action": "confirm", "code": current_code(device)})
    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=approver, confirmed=True).count() == 1
    assert LedgerEntry.objects.filter(kind="stepup.enrolled", actor="alice").exists()
    assert "Enrolled" in client.get(url).content.decode()


def test_removing_the_authenticator_disables_step_up(client, approver):
    device = TOTPDevice.objects.create(user=approver, name="app", confirmed=True)
    assert verify_step_up(approver, current_code(device)) == "totp"
    client.force_login(approver)
    assert client.post(reverse("governance:profile"), {"action": "remove"}).status_code == 302
    assert not TOTPDevice.objects.filter(user=approver).exists()
    assert LedgerEntry.objects.filter(kind="stepup.removed").exists()
