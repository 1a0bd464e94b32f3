"""A tiny client for the trainer service, on the standard library (no extra dependency).

from pytest_teach.trainer import TrainerClient

client = TrainerClient("http://127.0.0.1:8765", token=os.environ.get("TEACH_TRAINER_TOKEN"))
client.health()
client.train(job_id="job-1", dataset_ref="datasets/job-1.jsonl", run_id="run-1")
status = client.wait("run-1", timeout=120)
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

__all__ = ["TrainerClient", "TrainerError"]


class TrainerError(Exception):
    """A trainer call failed. ``status`` is the HTTP status (``None`` when nothing answered),
    ``code`` the service's error code and ``field`` the field it blamed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.body = body


class TrainerClient:
    """Talks to a trainer service at ``url``; ``token`` is sent as a bearer token on POSTs."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        text = (url or "").strip().rstrip("/")
        parsed = urllib.parse.urlparse(text)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"trainer URL {url!r} is not http(s)://HOST[:PORT]")
        self.url = text
        self.token = token or None
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"TrainerClient({self.url!r})"

    def _request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        import urllib.error  # here, not at module level: the pytest plugin imports this module
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token and method != "GET":
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        where = f"{method} {self.url}{path}"
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and "error" in payload:
                raise TrainerError(
                    f"{where}: HTTP {exc.code}: {payload['error']}",
                    status=exc.code,
                    code=payload.get("code"),
                    field=payload.get("field"),
                    body=payload,
                ) from None
            raise TrainerError(f"{where}: HTTP {exc.code}", status=exc.code, body=payload) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrainerError(f"{where}: no answer ({reason})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise TrainerError(f"{where}: the answer is not JSON") from None

    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /health``: backend, version, worker state, data dir, run counts."""
        return self._request("GET", "/health", timeout=timeout)

    def train(
        self,
        *,
        job_id: str,
        dataset_ref: str,
        run_id: str,
        base_model: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /train``: queue a run; returns its status (``pending``)."""
        body: dict[str, Any] = {"jobId": job_id, "datasetRef": dataset_ref, "runId": run_id}
        if base_model is not None:
            body["baseModel"] = base_model
        if params:
            body["params"] = params
        return self._request("POST", "/train", body)

    def status(self, run_id: str) -> dict[str, Any]:
        """``GET /status/{runId}``."""
        return self._request("GET", f"/status/{urllib.parse.quote(run_id, safe='')}")

    def runs(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """``GET /runs``: the latest runs, newest first."""
        query = urllib.parse.urlencode(
            {k: v for k, v in (("status", status), ("limit", limit)) if v}
        )
        return self._request("GET", f"/runs?{query}")["runs"]

    def wait(self, run_id: str, timeout: float = 300.0, *, poll: float = 0.2) -> dict[str, Any]:
        """Poll until the run is ``completed`` or ``failed``; return its status.

        Raises:
            TimeoutError: it is still pending or running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status["status"] in ("completed", "failed"):
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"run {run_id} is still {status['status']} after {timeout:g}s on {self.url}"
                )
            time.sleep(poll)
