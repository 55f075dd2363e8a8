"""Models of this concern (imported by reporting/models.py)."""
