"""Step-up for high-assurance decisions: TOTP authenticators through django-otp."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.exceptions import GovernanceError
from governance.ledger import services as ledger
from governance.people.models import User

DEVICE_NAME = "Authenticator app"


class InvalidStepUpCode(GovernanceError):
    code = "invalid_step_up_code"


def verify_step_up(user: User, code: str | None) -> str | None:
    """The method that verified a fresh one-time code ("totp"), or None when none did."""
    if not code or not code.strip().isdigit():
        return None
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        if device.verify_token(code.strip()):
            return "totp"
    return None


def confirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def pending_device(user: User) -> TOTPDevice:
    """The authenticator being enrolled: reused until confirmed, so the QR code stays the same."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as an inline SVG QR code (no image library, no network)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode().split("?>", 1)[-1]


def confirm_enrolment(*, user: User, code: str) -> TOTPDevice:
    """Confirm the pending authenticator with a code it shows; replaces any earlier one."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None or not code.strip().isdigit() or not device.verify_token(code.strip()):
        raise InvalidStepUpCode(
            "That code does not match; check the time on your phone and try the newest code.",
            fields={"code": ["Invalid code."]},
        )
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=True).delete()
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        ledger.append(
            kind="stepup.enrolled",
            subject=f"user:{user.pk}",
            actor=user.username,
            payload={"method": "totp", "device": device.name},
        )
    device.refresh_from_db()
    return device


def remove_authenticator(*, user: User) -> None:
    """Remove the person's authenticators; step-up stages then tell them to enrol again."""
    with transaction.atomic():
        deleted, _ = TOTPDevice.objects.filter(user=user).delete()
        if deleted:
            ledger.append(
                kind="stepup.removed",
                subject=f"user:{user.pk}",
                actor=user.username,
                payload={"method": "totp"},
            )
