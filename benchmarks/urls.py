"""Benchmark-only URLconf: the whole app plus the baseline view. Never used outside `make bench`."""

from django.urls import include, path

from benchmarks.views import Baseline

BASELINE_PATH = "bench/baseline"

urlpatterns = [
    path(BASELINE_PATH, Baseline.as_view(), name="bench-baseline"),
    path("", include("config.urls")),
]
