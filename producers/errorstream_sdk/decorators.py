"""``capture_errors``: a decorator (sync or async functions) and a context manager (``with``
or ``async with``) that captures an exception and re-raises it unchanged."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

from errorstream_sdk import api

F = TypeVar("F", bound=Callable[..., Any])


class capture_errors:  # noqa: N801 - used like a function
    def __init__(self, level: str = "error", **context: Any) -> None:
        self.level = level
        self.context = context

    def _capture(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):  # not KeyboardInterrupt, SystemExit, CancelledError
            api.capture_exception(
                exc,
                level=self.level,
                mechanism={"type": "generic", "handled": False},
                **self.context,
            )

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except BaseException as e:
                    self._capture(e)
                    raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except BaseException as e:
                self._capture(e)
                raise

        return wrapper  # type: ignore[return-value]

    def __enter__(self) -> capture_errors:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if e is not None:
            self._capture(e)
        return False

    async def __aenter__(self) -> capture_errors:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        return self.__exit__(t, e, tb)
