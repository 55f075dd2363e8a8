"""People and teams. The user model is SCIM-ready from the first migration."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scim.models import AbstractSCIMUserMixin

from governance.people.names import skeletons

if TYPE_CHECKING:
    from datetime import datetime


class User(AbstractSCIMUserMixin, AbstractUser):
    """A person (or a pipeline's service account) known to Signoff.

    SCIM-ready from the first migration: identity providers provision these rows later.
    """

    time_zone = models.CharField(max_length=64, default="UTC")
    working_hours_start = models.PositiveSmallIntegerField(default=9)
    working_hours_end = models.PositiveSmallIntegerField(default=17)
    is_service_account = models.BooleanField(
        default=False, help_text="A pipeline identity: may request releases, never approves."
    )
    # TR39 skeletons of the username (see governance.names), kept by save(): free-text names
    # from pipelines and new userNames are matched against them to catch look-alikes.
    name_skeleton = models.CharField(max_length=600, blank=True, editable=False, db_index=True)
    name_skeleton_cased = models.CharField(
        max_length=600, blank=True, editable=False, db_index=True
    )

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def save(self, *args, **kwargs) -> None:
        self.name_skeleton, self.name_skeleton_cased = skeletons(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:
            kwargs["update_fields"] = {*update_fields, "name_skeleton", "name_skeleton_cased"}
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    def is_available_at(self, moment: datetime) -> bool:
        """True when `moment` falls on a weekday inside this person's working hours."""
        local = moment.astimezone(ZoneInfo(self.time_zone))
        return (
            local.weekday() < 5 and self.working_hours_start <= local.hour < self.working_hours_end
        )


class Team(models.Model):
    """A group of people that owns services."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    members = models.ManyToManyField(User, related_name="teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CalendarFeedKey(models.Model):
    """The random nonce behind a person's calendar feed URL.

    The URL's token is an HMAC of the person and this nonce under a key derived from
    SECRET_KEY (governance.identity.feeds), so the page can always show the URL again while a
    copy of the database alone does not reveal it. Replacing the nonce stops the old URL at once.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="calendar_feed_key")
    nonce = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Calendar feed key of {self.user}"
