"""The change schedule: month and week calendar, conflicts, iCalendar feeds."""
