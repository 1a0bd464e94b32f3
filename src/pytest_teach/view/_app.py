"""The viewer's web app: server-rendered pages over the store, feedback that becomes training data,
a review queue and live counts.

Every handler is ``async`` and runs on the event loop's one thread, so the one store connection is
never used by two requests at once.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..redaction import redact_logs, redact_value
from ..report import finalize, image_media_type
from ..serve import RequestGuard, bind_socket, serve_app, url_for
from ..store import (
    EPISODE_SORTS,
    OUTCOMES,
    QUEUE_ORDERS,
    EpisodeFilter,
    Store,
    StoreError,
    episode_page,
    episodes_after,
    parse_since,
    review_queue,
)
from ._pages import SHA256, ab_view, default_sides, episode_view, row_view, session_views
from ._security import (
    CSRF_FIELD,
    CSRF_HEADER,
    AccessGuard,
    check_bind,
    csrf_ok,
    is_loopback,
)

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["CSP", "PAGE_SIZE", "create_app", "serve_viewer"]

redact_logs("uvicorn.error", "uvicorn.access")

_HERE = Path(__file__).parent
#: Episodes on one page of the list.
PAGE_SIZE = 50
#: The largest body a writing request may send.
MAX_BODY = 64 * 1024
#: As strict as the report's: nothing but this server's own files, no inline script or style,
#: no frames, forms post back here only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
#: The vendored static files, by the only names the server answers to.
_STATIC = {"view.js": "text/javascript", "view.css": "text/css"}
_EPISODE_ID = r"[0-9a-f]{4,32}"
_FILTERS = ("outcome", "label", "model", "scenario", "session", "since", "until", "q")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """The report's rendering rules: autoescaped, every value redacted by ``finalize``."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,
        finalize=finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@lru_cache(maxsize=len(_STATIC))
def _static(name: str) -> bytes:
    return (_HERE / "static" / name).read_bytes()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(body: Any, status: int = 200) -> Response:
    """A JSON response, redacted, with ``<``, ``>`` and ``&`` escaped: inert even if a browser
    were told to read it as HTML."""
    text = json.dumps(redact_value(body), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Response(text, status_code=status, media_type="application/json", headers=_HEADERS)


def _filters(params: dict[str, str], *, include_errors: bool = True) -> EpisodeFilter:
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise _BadRequest(400, f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    filters = EpisodeFilter(
        outcome=outcome,
        label=params.get("label") or None,
        model=params.get("model") or None,
        scenario=params.get("scenario") or None,
        session=params.get("session") or None,
        since=params.get("since") or None,
        include_errors=include_errors,
    )
    filters.where_clause()  # a bad label or date is one line now
    return filters


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if v is not None}


def _int(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return max(int(raw), 0)
    except ValueError:
        raise _BadRequest(400, f"{name} {raw!r} is not a whole number") from None


def _until(params: dict[str, str]) -> float | None:
    return parse_since(params.get("until") or None)


def create_app(store: Store, *, token: str | None = None, loopback_only: bool = True) -> Any:
    """The viewer for ``store`` as an ASGI app.

    With ``token``, every request must carry it (``Authorization: Bearer``, or the cookie a
    ``GET /?token=`` login sets). With ``loopback_only`` (and no token), requests naming a
    ``Host`` other than a loopback one are refused. Writing requests need the app's CSRF token
    (``app.state.csrf``), which every page carries.
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    csrf = secrets.token_urlsafe(32)
    app.state.csrf = csrf
    app.state.store = store

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = (
            _environment()
            .get_template(template)
            .render(
                csrf=csrf,
                store=store.location,
                path=request.url.path,
                **context,
            )
        )
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def refusal(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return _json({"error": message}, status)
        return page(
            request,
            "error.html.j2",
            status=status,
            title=f"Error {status}",
            status_code=status,
            message=message,
        )

    @app.exception_handler(_BadRequest)
    async def _bad(request: Request, exc: _BadRequest) -> Response:
        return refusal(request, exc.status, str(exc))

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> Response:
        return refusal(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return refusal(request, exc.status_code, str(exc.detail))

    # -- pages -------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def sessions(request: Request) -> Response:
        return page(request, "sessions.html.j2", title="Sessions", sessions=session_views(store))

    @app.get("/episodes", response_class=HTMLResponse)
    async def episodes(request: Request) -> Response:
        params = _params(request)
        sort = params.get("sort") or "time"
        if sort not in EPISODE_SORTS:
            raise _BadRequest(400, f"sort {sort!r} is not one of {', '.join(EPISODE_SORTS)}")
        descending = params.get("dir", "desc") != "asc"
        offset = _int(params, "offset", 0)
        listed = episode_page(
            store,
            _filters(params),
            text=params.get("q") or None,
            until=_until(params),
            sort=sort,
            descending=descending,
            offset=offset,
            limit=PAGE_SIZE,
            after=params.get("after") or None,
            before=params.get("before") or None,
        )
        kept = {k: params[k] for k in (*_FILTERS, "sort", "dir") if params.get(k)}
        live = sort == "time" and descending and offset == 0
        newest = max((r.rowid for r in listed.rows), default=0)
        return page(
            request,
            "episodes.html.j2",
            title="Episodes",
            rows=[row_view(r) for r in listed.rows],
            total=listed.total,
            offset=offset,
            shown=len(listed.rows),
            params=params,
            outcomes=OUTCOMES,
            sorts=list(EPISODE_SORTS),
            capped=listed.capped,
            # pages beside this one start from its first or last row (keyset): any depth is cheap
            prev_url=f"/episodes?{urlencode({**kept, 'offset': max(offset - PAGE_SIZE, 0), 'before': listed.prev_cursor})}"  # noqa: E501
            if offset and listed.rows
            else "",
            next_url=f"/episodes?{urlencode({**kept, 'offset': offset + len(listed.rows), 'after': listed.next_cursor})}"  # noqa: E501
            if listed.has_next
            else "",
            live_url=f"/api/episodes?{urlencode({**kept, 'after': newest})}" if live else "",
        )

    @app.get("/episodes/{episode_id}", response_class=HTMLResponse)
    async def episode(request: Request, episode_id: str) -> Response:
        return _episode_page(request, episode_id, queue=None)

    def _episode_page(request: Request, episode_id: str, queue: dict[str, Any] | None) -> Response:
        if not re.fullmatch(_EPISODE_ID, episode_id):
            raise _BadRequest(404, "not an episode id (4 to 32 hex digits)")
        try:
            full = store.resolve_episode_id(episode_id)
        except StoreError as exc:
            raise _BadRequest(404, str(exc)) from None
        found = next(store.episodes(ids=[full]))
        view = episode_view(found)
        return page(request, "episode.html.j2", title=view["scenario"], e=view, queue=queue)

    @app.get("/queue", response_class=HTMLResponse)
    async def queue(request: Request) -> Response:
        params = _params(request)
        order = params.get("order") or "failures"
        if order not in QUEUE_ORDERS:
            raise _BadRequest(400, f"order {order!r} is not one of {', '.join(QUEUE_ORDERS)}")
        position = _int(params, "position", 0)
        state = review_queue(
            store, _filters(params, include_errors=False), order=order, position=position
        )
        kept = {k: params[k] for k in _FILTERS if params.get(k)}
        info = {
            "order": order,
            "orders": QUEUE_ORDERS,
            "reviewed": state.reviewed,
            "total": state.total,
            "position": state.position,
            "here": f"/queue?{urlencode({**kept, 'order': order, 'position': position})}",
            "next": f"/queue?{urlencode({**kept, 'order': order, 'position': position + 1})}",
            "prev": f"/queue?{urlencode({**kept, 'order': order, 'position': position - 1})}"
            if position
            else "",
        }
        if state.episode_id is None:
            return page(request, "queue_done.html.j2", title="Review queue", queue=info)
        return _episode_page(request, state.episode_id, queue=info)

    @app.get("/ab", response_class=HTMLResponse)
    async def ab(request: Request) -> Response:
        params = _params(request)
        a, b = params.get("a") or "", params.get("b") or ""
        session = params.get("session") or None
        if not a or not b:
            sides = default_sides(store)
            if sides is None:
                return page(
                    request, "ab.html.j2", title="A/B pairs", ab=None, a=a, b=b, params=params
                )
            a, b, session = a or sides[0], b or sides[1], session or sides[2]
        only = params.get("only") == "differences"
        view = ab_view(
            store, a, b, only_differences=only, offset=_int(params, "offset", 0), session=session
        )
        c = view.comparison
        kept = {
            "a": a,
            "b": b,
            **({"session": session} if session else {}),
            **({"only": "differences"} if only else {}),
        }
        return page(
            request,
            "ab.html.j2",
            title="A/B pairs",
            a=a,
            b=b,
            session=session,
            params=params,
            ab={
                "text": view.text,
                "winner": c.winner_text,
                "verdict": c.verdict,
                "baseline": c.baseline.model,
                "candidate": c.candidate.model,
                "pairs": c.pairs,
                "regressions": len(c.regressions),
                "rows": view.rows,
                "total": view.total,
                "offset": view.offset,
                "only": only,
                "next_url": f"/ab?{urlencode({**kept, 'offset': view.offset + view.limit})}"
                if view.offset + view.limit < view.total
                else "",
                "prev_url": f"/ab?{urlencode({**kept, 'offset': max(view.offset - view.limit, 0)})}"
                if view.offset
                else "",
            },
        )

    # -- files -------------------------------------------------------------------------------

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in _STATIC:
            raise _BadRequest(404, "no such file")
        return Response(
            _static(name),
            media_type=_STATIC[name],
            headers={**_HEADERS, "Cache-Control": "max-age=300"},
        )

    @app.get("/artifacts/{sha}")
    async def artifact(sha: str) -> Response:
        # a content hash, looked up in the store: no path from the request reaches the disk
        if not SHA256.fullmatch(sha):
            raise _BadRequest(404, "not an artifact id (a sha256 in hex)")
        try:
            data = store.read_artifact(sha)
        except (StoreError, OSError):
            raise _BadRequest(404, "no such artifact in the store") from None
        media = image_media_type(data)
        if media is None:
            raise _BadRequest(415, "only PNG, JPEG and WebP artifacts are shown")
        return Response(
            data, media_type=media, headers={**_HEADERS, "Cache-Control": "max-age=3600"}
        )

    # -- JSON --------------------------------------------------------------------------------

    @app.get("/api/episodes")
    async def api_episodes(request: Request) -> Response:
        params = _params(request)
        filters = _filters(params)
        rows = episodes_after(
            store, _int(params, "after", 0), filters, text=params.get("q") or None, limit=PAGE_SIZE
        )
        total = episode_page(store, filters, text=params.get("q") or None, limit=1).total
        body = {"total": total, "rows": [row_view(r) for r in rows]}
        return _json(body)

    @app.get("/api/sessions")
    async def api_sessions() -> Response:
        listed = [
            {
                k: s[k]
                for k in ("id", "counts", "total", "exit_status", "gate", "running", "duration")
            }
            for s in session_views(store)
        ]
        return _json({"sessions": listed})

    @app.post("/api/feedback")
    async def feedback(request: Request) -> Response:
        form = await _body(request)
        if not csrf_ok(csrf, request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)):
            raise _BadRequest(403, "missing or wrong CSRF token; reload the page and try again")
        saved = _save_feedback(store, form)
        if "application/json" in request.headers.get("content-type", ""):
            return _json(saved)
        back = str(form.get("back") or "")
        if not back.startswith("/") or back.startswith("//"):
            back = f"/episodes/{saved['episode']}"
        anchor = f"#step-{saved['step']}" if saved["step"] is not None else ""
        return RedirectResponse(back + anchor, status_code=303, headers=_HEADERS)

    guarded = RequestGuard(
        app,
        max_body=MAX_BODY,
        error_body=lambda status, message, code: {"error": message, "code": code},
        require_utf8=True,
    )
    return AccessGuard(guarded, token=token, loopback_only=loopback_only)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise _BadRequest(
                400, f"malformed JSON body ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(data, dict):
            raise _BadRequest(400, "the body must be a JSON object")
        return data
    if kind == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
    raise _BadRequest(415, "send application/json or a form (application/x-www-form-urlencoded)")


def _optional_int(form: dict[str, Any], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _BadRequest(400, f"{name} must be a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _BadRequest(400, f"{name} {value!r} is not a whole number") from None


def _parse_action(text: str) -> Any:
    """A typed correction: JSON when it parses (``{"tools": ["weather"]}``), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _save_feedback(store: Store, form: dict[str, Any]) -> dict[str, Any]:
    """Write one feedback row as ``teach feedback add`` does: a step marked good is confirmed
    with its own action, a bad one corrected with the action picked or typed; a rating and a
    comment without a step rate the whole run."""
    episode_id = str(form.get("episode") or "")
    step_index = _optional_int(form, "step")
    verdict = str(form.get("verdict") or "")
    if verdict not in ("", "good", "bad"):
        raise _BadRequest(400, f"verdict {verdict!r} is not good or bad")
    rating = _optional_int(form, "rating")
    comment = str(form.get("comment") or "").strip() or None
    choice = _optional_int(form, "choice")
    typed = form.get("correction")
    if isinstance(typed, str):
        typed = typed.strip() or None
        typed = None if typed is None else _parse_action(typed)
    found = store.get_episode(episode_id) if episode_id else None
    if found is None:
        raise _BadRequest(400, "feedback needs the episode id")
    correct: Any = None
    if step_index is None:
        if verdict or choice is not None or typed is not None:
            raise _BadRequest(400, "a verdict or a correction needs the step it is about")
    else:
        steps = {s.index: s for s in found.steps}
        if step_index not in steps:
            raise _BadRequest(400, f"step {step_index} is not a step of episode {found.id}")
        step = steps[step_index]
        if choice is not None:
            valid = step.valid_actions or []
            if not 0 <= choice < len(valid):
                raise _BadRequest(400, f"choice {choice} is not one of the step's valid actions")
            correct = valid[choice]
        elif typed is not None:
            correct = typed
        if verdict == "good":
            if correct is not None and correct != step.action:
                raise _BadRequest(
                    400, "a step marked good takes no correction; mark it bad instead"
                )
            correct = step.action
        elif correct is None:
            raise _BadRequest(
                400, "a bad step needs its correction: pick a valid action or type the right one"
            )
        elif correct == step.action:
            raise _BadRequest(
                400, "the correction is what the agent did; mark the step good instead"
            )
    fb = store.add_feedback(
        found.id,
        rating=rating,
        comment=None if comment is None else redact_value(comment),
        step=step_index,
        correct_action=None if correct is None else redact_value(correct),
    )
    return {
        "id": fb.id,
        "episode": fb.episode_id,
        "step": fb.step,
        "verdict": "" if step_index is None else ("good" if verdict == "good" else "bad"),
        "rating": fb.rating,
    }


def serve_viewer(
    db: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    log_level: str = "warning",
    ready_message: bool = True,
) -> None:
    """Open the store at ``db``, bind ``host:port``, announce the URL and serve the viewer until
    interrupted.

    A non-loopback ``host`` needs ``token`` (see :func:`check_bind`); the socket is bound before
    the URL is announced, so a busy port fails first, in one line.

    Raises:
        ViewerError: a non-loopback ``host`` without a token.
        PortInUseError: the port is taken.
        StoreError: the store can't be opened.
    """
    check_bind(host, token)
    sock: socket.socket = bind_socket(host, port)
    try:
        store = Store.open(db)
    except BaseException:
        sock.close()
        raise
    try:
        app = create_app(store, token=token, loopback_only=is_loopback(host))
        if ready_message:
            login = " (open it once with ?token=YOUR_TOKEN)" if token else ""
            print(f"teach view: {store.location} at {url_for(sock, host)}/{login}", flush=True)
        serve_app(app, sock, log_level=log_level)
    finally:
        store.close()
