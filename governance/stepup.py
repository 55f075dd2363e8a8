"""Step-up verification for high-assurance decisions (TOTP through django-otp)."""

from __future__ import annotations

from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.models import User


def verify_step_up(user: User, code: str | None) -> str | None:
    """The method that verified a fresh one-time code ("totp"), or None when none did."""
    if not code or not code.strip().isdigit():
        return None
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        if device.verify_token(code.strip()):
            return "totp"
    return None
