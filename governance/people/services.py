"""A person's own settings: where and when they work (approval routing prefers working hours)."""

from __future__ import annotations

from governance.people.models import User


def update_profile(
    *, user: User, time_zone: str, working_hours_start: int, working_hours_end: int
) -> User:
    """Set where and when a person works: approval routing prefers people in working hours."""
    User.objects.filter(pk=user.pk).update(
        time_zone=time_zone,
        working_hours_start=working_hours_start,
        working_hours_end=working_hours_end,
    )
    user.refresh_from_db()
    return user
