"""What every request and response goes through before the views: the form's
posts must be a form, in UTF-8, and every page carries the security headers."""

from urllib.parse import parse_qsl

from flask import render_template, request

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

# Only our own files: no inline script or style, no framing, posts only to us.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _error(status, title, message):
    return render_template("error.html", title=title, message=message), status


def check_form_post():
    """Turn away posts that are not a form before CSRF checks them, which
    would otherwise blame an 'expired form' for a body it could not read."""
    if request.method != "POST":
        return None
    if request.mimetype not in FORM_TYPES:
        return _error(415, "Not a form",
                      "The survey takes its answers as a web form "
                      "(application/x-www-form-urlencoded or multipart/form-data).")
    if request.mimetype == "application/x-www-form-urlencoded":
        # Werkzeug keeps undecodable bytes as literal "%FF" text; read strictly instead.
        try:
            parse_qsl(request.get_data(cache=True).decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return _error(400, "We couldn't read that",
                          "The form sent text that is not valid UTF-8. Please type your answers again.")
    return None


def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        # Pages carry a per-visitor CSRF token or a visitor's answers: never cache them.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app):
    # Registered before CSRFProtect's own check, so it runs first.
    app.before_request(check_form_post)
    app.after_request(add_security_headers)
