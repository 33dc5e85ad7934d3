"""A tiny HTTP client that fills the survey's form as a person's browser would,
for the tests and the benchmark, against a real server over loopback."""

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request

FIELD = re.compile(r'name="(csrf_token|submission_id|form_started)" type="hidden" value="([^"]*)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """Keeps cookies like a browser, so the CSRF token matches its session."""

    def __init__(self, base_url, fill_seconds=0):
        """fill_seconds: how long the person takes over the form; submit()
        posts no sooner after the form was shown (the web's MIN_FILL_SECONDS
        turns away faster posts as a bot's)."""
        self.base_url = base_url.rstrip("/")
        self.fill_seconds = fill_seconds
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)

    def request(self, path, data=None, timeout=10):
        # doseq: a list (several picks) posts one field per value, as a form does.
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        try:
            with self.opener.open(self.base_url + path, body, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def form(self, path="/"):
        """GET the form at `path`; its hidden fields."""
        status, _, html = self.request(path)
        assert status == 200, html
        return dict(FIELD.findall(html))

    def submit(self, **fields):
        """GET the form, then POST it; returns (status, headers, body, submission_id)."""
        data = self.form()
        time.sleep(self.fill_seconds)
        data.update(fields)
        status, headers, body = self.request("/", data)
        return status, headers, body, data["submission_id"]
