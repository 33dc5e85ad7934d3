"""The HTTP client of loopback/browser.py, shared with the benchmark."""

from loopback.browser import FIELD, Browser

__all__ = ["FIELD", "Browser"]
