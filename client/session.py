"""A keep-alive HTTP/1.1 JSON session on one connection (stdlib only, so it adds little latency)."""
import http.client
import json
from urllib.parse import urlsplit


class Session:
    """One persistent connection to the frontend; reconnects once if the server closed it."""

    def __init__(self, base_url="http://127.0.0.1:8000", timeout=30):
        url = urlsplit(base_url)
        self.host, self.port = url.hostname, url.port or 80
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, raw=None):
        """Send one request (``body`` as JSON, or ``raw`` bytes as they are);
        return ``(status, parsed JSON body, response headers)``."""
        headers = dict(headers or {})
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.BadStatusLine):
                self.close()
                if attempt == 2:
                    raise
        data = json.loads(raw) if raw else None
        return response.status, data, response.headers

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body, headers=None):
        return self.request("POST", path, body=body, headers=headers)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
