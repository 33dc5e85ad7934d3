"""`python -m web.healthcheck`: exit 0 only if this container's web answers /readyz."""

import sys
import urllib.request

from web import config


def main():
    # The app's own listener, not the proxy's PORT: this checks gunicorn itself.
    url = f"http://127.0.0.1:{config.server()['APP_PORT']}/readyz"
    try:
        # bandit B310 warns of file:// and custom schemes in a URL from outside;
        # this one is a fixed http:// URL to ourselves, only its port from the setting.
        with urllib.request.urlopen(url, timeout=3) as response:  # nosec B310
            print(response.read().decode())
            return 0
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
