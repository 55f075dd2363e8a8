"""Presentation helpers for approval pages: status → badge colour, release → status word."""

from django import template

from approvals.presenters import STATUS_STYLES, release_status

register = template.Library()


@register.filter
def status_css(status: str) -> str:
    return STATUS_STYLES.get(status, "secondary")


register.filter("release_status", release_status)
