"""`python -m web.healthcheck`: exit 0 only if this container's web answers /readyz."""

import os
import sys
import urllib.request


def main():
    url = f"http://127.0.0.1:{os.environ.get('APP_PORT', '2156')}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            print(response.read().decode())
            return 0
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
