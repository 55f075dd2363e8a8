"""The browser test here drives Debian's Chromium, as tests/browser does."""

from tests.browser.conftest import browser_context_args, browser_type_launch_args  # noqa: F401
