"""The trainer service: a FastAPI app around a :class:`TrainerService` (run table + dispatcher).

Endpoints (OpenAPI at ``/openapi.json``):

- ``GET /health``: 200 with the backend, the version, the worker's state, the data dir and the
  run counts.
- ``POST /train``: queue a run; 202 with its status. 422 names the bad field, 400 for a
  ``datasetRef`` or ``baseModel`` that can't be used (outside the data dir, missing) or a body
  that isn't UTF-8, 409 for a ``runId`` that exists, 401 without the bearer token when
  ``TEACH_TRAINER_TOKEN`` is set (checked before the body is read), 413 for a body over the
  limit (``--max-body``, default 1 MB), 408 for one that doesn't arrive in time.
- ``GET /status/{runId}``: the run; 404 when unknown.
- ``GET /runs``: the latest runs, newest first.

Every error body is ``{"error": message, "code": code, "field": name-or-null}`` (422 adds
``errors``, one per field); it names fields, never a server path.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..redaction import redact_logs
from ..serve import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    RequestGuard,
    bind_socket,
    no_lone_surrogates,
    serve_app,
    url_for,
)
from ._backends import BACKENDS, check_base_model
from ._runs import DuplicateRunError, RunTable
from ._worker import Dispatcher

__all__ = ["TrainerService", "TrainerServiceError", "create_app", "resolve_dataset", "serve"]

#: uvicorn's request and error logs show paths, queries and messages: mask secrets in them.
redact_logs("uvicorn.error", "uvicorn.access")

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
JOB_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
TOKEN_ENV = "TEACH_TRAINER_TOKEN"
FAULTS_ENV = "TEACH_TRAINER_FAULTS"
#: The default limit on a request body, in bytes.
DEFAULT_MAX_BODY = 1_000_000
#: Text a client sends: no lone surrogates (they can't be stored or shown).
Text = Annotated[str, AfterValidator(no_lone_surrogates)]


class TrainerServiceError(Exception):
    """The service can't start (data dir in use, unknown backend...); the message says why."""


class BadRequest(Exception):
    """A request that is well-formed but can't be served (400)."""

    def __init__(self, message: str, field: str | None = None, code: str = "bad_request"):
        super().__init__(message)
        self.field = field
        self.code = code


# -- the request and response models ---------------------------------------------------------


class TrainParams(BaseModel):
    """Training parameters. Unknown names are refused (422 naming them)."""

    model_config = ConfigDict(extra="forbid")
    max_steps: int = Field(1, ge=1, le=100_000, description="optimiser steps")
    learning_rate: float = Field(2e-4, gt=0, le=1, allow_inf_nan=False)
    batch_size: int = Field(4, ge=1, le=1024, description="rows per step")
    max_length: int = Field(2048, ge=16, le=131_072, description="longest tokenized row")
    lora: bool = Field(True, description="train a LoRA adapter (sft) instead of every weight")
    lora_r: int = Field(8, ge=1, le=1024, description="LoRA rank")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    delay_s: float = Field(
        0.0, ge=0, le=3600, allow_inf_nan=False, description="stub backend: time to spend"
    )
    crash: Literal["raise", "exit"] | None = Field(
        None,
        description="fault injection: make the worker (on several processes, the last rank) "
        "raise or exit at the first step; "
        f"refused unless the service runs with {FAULTS_ENV}=1",
    )


class TrainRequest(BaseModel):
    """The body of ``POST /train``. Unknown fields are refused (422 naming them)."""

    model_config = ConfigDict(extra="forbid")
    jobId: Text = Field(pattern=JOB_ID_PATTERN, description="the improvement job this run is for")
    datasetRef: Text = Field(
        min_length=1,
        max_length=4096,
        description="the chat JSONL to train on: a path inside the trainer's data dir "
        "(relative to it, or absolute)",
    )
    runId: str = Field(pattern=RUN_ID_PATTERN, description="the caller's id for this run; unique")
    baseModel: Text | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="a model directory inside the trainer's data dir (relative to it, or "
        "absolute) or a --models-dir, or a hub id; default: the tiny local model",
    )
    params: TrainParams = Field(default_factory=TrainParams)


class Metrics(BaseModel):
    """What a run measured (more keys may appear, depending on the backend)."""

    model_config = ConfigDict(extra="allow")
    loss: float | None = None
    steps: int | None = None
    seconds: float | None = None


class RunStatus(BaseModel):
    """A run: ``pending``, ``running``, ``completed`` or ``failed``."""

    runId: str
    jobId: str
    status: Literal["pending", "running", "completed", "failed"]
    backend: str
    datasetRef: str
    baseModel: str | None
    params: dict[str, Any]
    outputModelRef: str | None
    metrics: Metrics
    error: str | None
    createdAt: str
    startedAt: str | None
    finishedAt: str | None
    updatedAt: str


class RunList(BaseModel):
    """Runs, newest first."""

    runs: list[RunStatus]


class Health(BaseModel):
    """The service is up."""

    status: Literal["ok"]
    backend: str
    version: str
    worker: Literal["starting", "ready", "busy", "down"]
    dataDir: str
    runs: dict[str, int]
    auth: bool
    startedAt: str
    processes: int = Field(1, description="processes per run (2 or more: launched runs)")
    launcher: str | None = Field(None, description="torchrun or accelerate, for launched runs")


class FieldError(BaseModel):
    """One invalid field."""

    field: str | None
    message: str


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    code: str
    field: str | None = None
    errors: list[FieldError] | None = None


def _err(status: int, message: str, code: str, field: str | None = None, **extra: Any) -> Any:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": message, "code": code, "field": field, **extra}
    return JSONResponse(status_code=status, content=body, headers=headers)


# -- the service -----------------------------------------------------------------------------


def resolve_dataset(data_dir: Path, ref: str) -> Path:
    """The file ``datasetRef`` names, which must lie inside ``data_dir``.

    Relative refs are taken from the data dir; symlinks and ``..`` are resolved before the check,
    so nothing outside it can be reached. A ref outside it gets the same answer whether it
    exists or not, and no message names a server path.

    Raises:
        BadRequest: outside the data dir, missing, not a regular file, or not a usable path.
    """
    if "\x00" in ref:
        raise BadRequest("datasetRef contains a NUL character", "datasetRef", "bad_dataset_ref")
    root = data_dir.resolve()
    candidate = Path(ref).expanduser() if ref.startswith("~") else Path(ref)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve()
        inside = resolved.is_relative_to(root)
        exists, is_file = resolved.exists(), resolved.is_file()
    except (OSError, RuntimeError, ValueError):
        raise BadRequest(
            f"datasetRef {ref!r} is not a usable path", "datasetRef", "bad_dataset_ref"
        ) from None
    if not inside:
        raise BadRequest(
            f"datasetRef {ref!r} is outside the trainer's data dir; "
            "write the dataset into the data dir and pass its path relative to it",
            "datasetRef",
            "dataset_outside_data_dir",
        )
    if not exists:
        raise BadRequest(
            f"datasetRef {ref!r}: no such file in the trainer's data dir",
            "datasetRef",
            "dataset_not_found",
        )
    if not is_file:
        raise BadRequest(
            f"datasetRef {ref!r} is not a regular file", "datasetRef", "dataset_not_found"
        )
    return resolved


class TrainerService:
    """The trainer's state: the data dir (locked to this process), the run table and the
    dispatcher. :meth:`start` starts the worker, :meth:`close` stops everything."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        backend: str = "stub",
        *,
        token: str | None = None,
        allow_faults: bool = False,
        run_timeout: float | None = None,
        model_dirs: Sequence[str | os.PathLike[str]] = (),
        processes: int = 1,
        launcher: str = "torchrun",
        accelerate_config: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise TrainerServiceError(
                f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        self.data_dir = Path(data_dir).expanduser().resolve()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "datasets").mkdir(exist_ok=True)
        except OSError as exc:
            raise TrainerServiceError(
                f"cannot create the data dir {self.data_dir}: {exc}"
            ) from None
        self.backend = backend
        self.token = token or None
        self.allow_faults = allow_faults
        self.model_dirs = [Path(d).expanduser().resolve() for d in model_dirs]
        self._lock_file: Any = None
        self._lock()
        self.runs = RunTable(self.data_dir / "trainer.db")
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.recovered = self.runs.recover(
            "the trainer service stopped while this run was in flight (found on restart at "
            f"{self.started_at}); submit it again with a new runId"
        )
        try:
            self.dispatcher = Dispatcher(
                self.runs,
                backend,
                self.data_dir,
                run_timeout=run_timeout,
                processes=processes,
                launcher=launcher,
                accelerate_config=accelerate_config,
            )
        except ValueError as exc:
            self.runs.close()
            if self._lock_file is not None:
                self._lock_file.close()
            raise TrainerServiceError(str(exc)) from None
        self._started = False
        self._closed = False

    def _lock(self) -> None:
        path = self.data_dir / "trainer.lock"
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process guard
            return
        handle = open(path, "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise TrainerServiceError(
                f"the data dir {self.data_dir} is in use by another trainer ({owner}); "
                "stop it or pass another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def start(self) -> None:
        """Start the worker and the dispatch loop (idempotent)."""
        if not self._started:
            self._started = True
            self.dispatcher.start()

    def close(self) -> None:
        """Fail the run in flight, stop the worker, close the table, release the data dir."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self.dispatcher.stop()
        self.runs.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def check_token(self, method: str, path: str, authorization: str | None) -> str | None:
        """``None`` when the request may go on, else why not: every method but GET, HEAD and
        OPTIONS needs ``Authorization: Bearer <token>`` when the service has a token. It reads
        the headers only, so :class:`~pytest_teach.serve.RequestGuard` runs it before the body.
        """
        if self.token is None or method in ("GET", "HEAD", "OPTIONS"):
            return None
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return f"missing bearer token: send Authorization: Bearer <{TOKEN_ENV}>"
        if not hmac.compare_digest(credentials.encode(), self.token.encode()):
            return "wrong bearer token"
        return None


# -- the app ---------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "datasetRef or baseModel can't be used"},
    401: {"model": ErrorBody, "description": "missing or wrong bearer token"},
    408: {"model": ErrorBody, "description": "the body did not arrive in time"},
    409: {"model": ErrorBody, "description": "a run with this runId exists"},
    413: {"model": ErrorBody, "description": "the body is over the size limit"},
    422: {"model": ErrorBody, "description": "malformed body; the field is named"},
}

_bearer = HTTPBearer(auto_error=False, description=f"the service's {TOKEN_ENV}, when it is set")


def _error_body(status: int, message: str, code: str) -> dict[str, Any]:
    return {"error": message, "code": code, "field": None}


def create_app(
    service: TrainerService,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> FastAPI:
    """The FastAPI app serving ``service``; its lifespan starts and closes the service.

    A :class:`~pytest_teach.serve.RequestGuard` sits in front: the token is checked before the
    body is read, and a body over ``max_body`` bytes (413) or slower than ``body_timeout``
    seconds (408) is refused without reading the rest.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="pytest-teach trainer",
        version=__version__,
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(
        RequestGuard,
        max_body=max_body,
        body_timeout=body_timeout,
        error_body=_error_body,
        authorize=service.check_token,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        errors: list[dict[str, Any]] = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                detail = (err.get("ctx") or {}).get("error", "JSON decode error")
                return _err(422, f"malformed JSON body: {detail}", "malformed_json")
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            name = ".".join(loc) or None
            errors.append({"field": name, "message": str(err.get("msg", "invalid"))})
        first = errors[0]["field"] if errors else None
        text = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
        return _err(422, f"invalid request: {text}", "invalid_request", first, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:  # not JSON, not UTF-8
            return _err(422, f"malformed JSON body: {detail}", "malformed_json")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _err(exc.status_code, detail, code)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> Any:
        return _err(400, str(exc), exc.code, exc.field)

    @app.get("/health", response_model=Health)
    def health() -> dict[str, Any]:
        """Liveness and identity: backend, version, worker state, data dir, run counts."""
        return {
            "status": "ok",
            "backend": service.backend,
            "version": __version__,
            "worker": service.dispatcher.state,
            "dataDir": str(service.data_dir),
            "runs": service.runs.counts(),
            "auth": service.token is not None,
            "startedAt": service.started_at,
            "processes": service.dispatcher.processes,
            "launcher": service.dispatcher.launcher if service.dispatcher.processes > 1 else None,
        }

    @app.post(
        "/train",
        status_code=202,
        response_model=RunStatus,
        responses=_ERRORS,
        dependencies=[Depends(_bearer)],  # documents the scheme; the guard checks it
    )
    def train(body: TrainRequest) -> Any:
        """Queue a training run; runs execute one at a time, in order."""
        if body.params.crash is not None and not service.allow_faults:
            return _err(
                422,
                f"params.crash: fault injection is off; start the trainer with {FAULTS_ENV}=1",
                "faults_disabled",
                "params.crash",
                errors=[{"field": "params.crash", "message": "fault injection is off"}],
            )
        dataset = resolve_dataset(service.data_dir, body.datasetRef)
        try:
            check_base_model(body.baseModel, service.data_dir, service.model_dirs)
        except ValueError as exc:
            raise BadRequest(str(exc), "baseModel", "bad_base_model") from None
        try:
            run = service.runs.add(
                run_id=body.runId,
                job_id=body.jobId,
                dataset_ref=body.datasetRef,
                dataset_path=str(dataset),
                backend=service.backend,
                base_model=body.baseModel,
                params=body.params.model_dump(),
            )
        except DuplicateRunError:
            return _err(
                409,
                f"a run with runId {body.runId!r} exists already; use a new runId",
                "duplicate_run",
                "runId",
            )
        service.dispatcher.notify()
        return JSONResponse(
            status_code=202,
            content=run.to_api(),
            headers={"Location": f"/status/{run.run_id}"},
        )

    @app.get(
        "/status/{runId}",
        response_model=RunStatus,
        responses={404: {"model": ErrorBody, "description": "no such run"}},
    )
    def status(runId: str) -> Any:  # noqa: N803 - the API's name
        """One run's status, output and metrics."""
        run = service.runs.get(runId)
        if run is None:
            return _err(404, f"no run {runId!r} on this trainer", "unknown_run", "runId")
        return run.to_api()

    @app.get("/runs", response_model=RunList, responses={422: _ERRORS[422]})
    def runs(
        status: Annotated[
            Literal["pending", "running", "completed", "failed"] | None, Query()
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """The latest runs, newest first."""
        return {"runs": [r.to_api() for r in service.runs.list(status, limit)]}

    return app


def _exit_with(parent: int) -> None:
    """Shut down cleanly (SIGTERM to ourselves) once process ``parent`` is gone: a trainer that
    a test session started must not outlive it."""

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=watch, name="teach-trainer-parent", daemon=True).start()


def serve(
    data_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    backend: str = "stub",
    token: str | None = None,
    allow_faults: bool = False,
    run_timeout: float | None = None,
    log_level: str = "info",
    max_body: int = DEFAULT_MAX_BODY,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    model_dirs: Sequence[str | os.PathLike[str]] = (),
    processes: int = 1,
    launcher: str = "torchrun",
    accelerate_config: str | None = None,
) -> None:
    """Run the trainer service until interrupted (SIGINT/SIGTERM shut it down cleanly: the run
    in flight is marked failed, the worker stopped).

    The socket is bound before anything is announced: a busy port fails here, and the line
    ``... serving http://HOST:PORT ...`` means the port is ours.

    Raises:
        TrainerServiceError: the service can't start (data dir in use, unknown backend).
        PortInUseError: the port is taken (one line naming it).
    """
    parent = os.environ.get("TEACH_TRAINER_PARENT_PID", "")
    if parent.isdigit():
        _exit_with(int(parent))
    service = TrainerService(
        data_dir,
        backend,
        token=token,
        allow_faults=allow_faults,
        run_timeout=run_timeout,
        model_dirs=model_dirs,
        processes=processes,
        launcher=launcher,
        accelerate_config=accelerate_config,
    )
    try:
        sock = bind_socket(host, port)
        app = create_app(service, max_body=max_body, body_timeout=body_timeout)
        print(
            f"teach trainer: backend {backend}, data dir {service.data_dir}, "
            f"serving {url_for(sock, host)} (POST needs a bearer token: "
            f"{'yes' if service.token else 'no'}; bodies up to {max_body} bytes)",
            flush=True,
        )
        serve_app(app, sock, header_timeout=header_timeout, log_level=log_level)
    finally:
        service.close()
