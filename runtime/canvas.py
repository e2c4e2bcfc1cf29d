"""A canvas: a named set of handlers (HTTP handlers, queue workers, crons) and user
functions (SPEC §4, §15)."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from runtime.recorder import record_function
from runtime.routing import Router, parse_route
from runtime.sampling import Sampling
from runtime.schedule import Schedule
from trace_store.errors import RoutingError
from trace_store.keys import CANVAS_RE, FUNCTION_RE, HANDLER_ID_RE

if TYPE_CHECKING:
    from collections.abc import Callable

F = TypeVar("F", bound="Callable[..., Any]")


HTTP: Final = "http"
WORKER: Final = "worker"
CRON: Final = "cron"
#: A queue's name: what ``@canvas.worker`` and ``stdlib.queue.enqueue`` name.
QUEUE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
DEFAULT_MAX_ATTEMPTS: Final = 5


@dataclass(eq=False)
class Handler:
    """One handler. ``id`` is the identity its traces belong to; ``kind`` says what
    runs it: an HTTP request (``method``, ``route``), a queue's message (``queue``) or
    a cron tick (``schedule``)."""

    canvas: str
    id: str
    method: str
    route: str
    function: Callable[..., Any]
    is_async: bool
    sample: Sampling | None = None
    kind: str = HTTP
    queue: str = ""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    schedule: Schedule | None = None
    #: The handler as the editor API and trace documents show it (built once).
    description: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        if self.kind == WORKER:
            self.description = {"id": self.id, "kind": WORKER, "queue": self.queue}
        elif self.kind == CRON:
            assert self.schedule is not None
            self.description = {"id": self.id, "kind": CRON, "schedule": self.schedule.text}
        else:
            self.description = {
                "id": self.id,
                "kind": HTTP,
                "method": self.method,
                "route": self.route,
            }


@dataclass(eq=False)
class UserFunction:
    """A user function: its calls are recorded, and the editor can run it by name."""

    name: str
    #: The recorded wrapper (what handlers call).
    function: Callable[..., Any]
    #: The undecorated function (what a function run calls under its own recorder).
    raw: Callable[..., Any]
    signature: inspect.Signature
    is_async: bool


@dataclass(eq=False)
class Canvas:
    """A canvas: ``Canvas("shop")``, then ``@canvas.http(...)``, ``@canvas.worker(...)``,
    ``@canvas.cron(...)`` and ``@canvas.function()``."""

    name: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    #: The worker of each queue (also in ``handlers``).
    workers: dict[str, Handler] = field(default_factory=dict)
    functions: dict[str, UserFunction] = field(default_factory=dict)
    router: Router[Handler] = field(default_factory=Router)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not CANVAS_RE.fullmatch(self.name):
            raise RoutingError(f"invalid canvas name {self.name!r}: expected [a-z0-9-]{{1,63}}")

    def _handler_id(self, function: Callable[..., Any], id: str | None) -> str:
        handler_id = id if id is not None else function.__name__.lower()
        if not HANDLER_ID_RE.fullmatch(handler_id):
            raise RoutingError(
                f"canvas {self.name!r}: invalid handler id {handler_id!r} "
                "(expected [a-z0-9_-]{1,64})"
            )
        if handler_id in self.handlers:
            raise RoutingError(f"canvas {self.name!r}: duplicate handler id {handler_id!r}")
        return handler_id

    def http(
        self, method: str, route: str, *, id: str | None = None, sample: str | None = None
    ) -> Callable[[F], F]:
        """Register a handler for ``method`` and ``route``; the id defaults to its name."""

        def register(function: F) -> F:
            handler_id = self._handler_id(function, id)
            parse_route(route)
            handler = Handler(
                canvas=self.name,
                id=handler_id,
                method=method.upper(),
                route=route,
                function=function,
                is_async=inspect.iscoroutinefunction(function),
                sample=None
                if sample is None
                else Sampling.parse(sample, setting=f"sample= of handler {handler_id!r}"),
            )
            self.router.add(handler.method, route, handler)
            self.handlers[handler_id] = handler
            return function

        return register

    def worker(
        self, queue: str, *, id: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> Callable[[F], F]:
        """Register the worker of ``queue``: it is called with each message's value,
        retried with backoff up to ``max_attempts`` times when it raises."""
        if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
            raise RoutingError(
                f"canvas {self.name!r}: invalid queue name {str(queue)[:80]!r}"
                " (expected [a-z0-9][a-z0-9_.-]{0,63})"
            )
        if not isinstance(max_attempts, int) or not 1 <= max_attempts <= 100:
            raise RoutingError(f"canvas {self.name!r}: max_attempts must be 1 to 100")

        def register(function: F) -> F:
            handler_id = self._handler_id(function, id)
            if queue in self.workers:
                raise RoutingError(
                    f"canvas {self.name!r}: queue {queue!r} already has a worker"
                    f" ({self.workers[queue].id!r})"
                )
            handler = Handler(
                self.name,
                handler_id,
                "",
                "",
                function,
                inspect.iscoroutinefunction(function),
                kind=WORKER,
                queue=queue,
                max_attempts=max_attempts,
            )
            self.handlers[handler_id] = self.workers[queue] = handler
            return function

        return register

    def cron(
        self, expression: str | None = None, *, every: int | None = None, id: str | None = None
    ) -> Callable[[F], F]:
        """Register a cron: a five-field expression (UTC) or ``every`` seconds."""
        try:
            schedule = Schedule.parse(expression, every)
        except ValueError as exc:
            raise RoutingError(f"canvas {self.name!r}: {exc}") from None

        def register(function: F) -> F:
            handler = Handler(
                self.name,
                self._handler_id(function, id),
                "",
                "",
                function,
                inspect.iscoroutinefunction(function),
                kind=CRON,
                schedule=schedule,
            )
            self.handlers[handler.id] = handler
            return function

        return register

    def function(self, name: str | None = None) -> Callable[[F], F]:
        """Register a user function whose calls are recorded with args and result."""

        def register(function: F) -> F:
            fname = name if name is not None else function.__name__
            if not FUNCTION_RE.fullmatch(fname):
                raise RoutingError(f"canvas {self.name!r}: invalid function name {fname!r}")
            if fname in self.functions:
                raise RoutingError(f"canvas {self.name!r}: duplicate function {fname!r}")
            wrapped = record_function(function, fname)
            self.functions[fname] = UserFunction(
                fname,
                wrapped,
                function,
                inspect.signature(function),
                inspect.iscoroutinefunction(function),
            )
            return wrapped  # type: ignore[return-value]

        return register

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        """The handler for a request and its path parameters, or ``None`` (a 404)."""
        return self.router.match(method, path)
