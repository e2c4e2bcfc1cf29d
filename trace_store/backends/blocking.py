"""What the cloud stores share: a blocking SDK (boto3, google-cloud-storage) called from
a thread pool of the store's own, under an optional key prefix, its errors translated
to strata's (:class:`~trace_store.errors.StrataError` subclasses)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from trace_store.backends.base import ObjectStore
from trace_store.errors import StrataError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")


class BlockingClientStore(ObjectStore):
    """An :class:`ObjectStore` over a blocking SDK client."""

    #: The SDK's exceptions that :meth:`_translate` turns into strata's.
    client_errors: ClassVar[tuple[type[Exception], ...]] = (Exception,)

    def __init__(self, prefix: str, pool_size: int) -> None:
        self.prefix = prefix
        self._pool = ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix=f"strata-{self.scheme}"
        )

    def full_key(self, key: str) -> str:
        """The bucket's name for a store-relative key."""
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _run(self, fn: Callable[..., T], *args: Any, key: str = "") -> T:
        """Run a blocking SDK call in the pool, its errors translated (``key`` names the
        object in messages; empty: the bucket)."""
        loop = asyncio.get_running_loop()
        with self.sdk_errors(key):
            return await loop.run_in_executor(self._pool, lambda: fn(*args))

    @contextlib.contextmanager
    def sdk_errors(self, key: str = "") -> Iterator[None]:
        """Translate the SDK's errors raised in the block into strata's: for blocking
        calls made on the caller's thread (the bucket-lifecycle methods)."""
        try:
            yield
        except StrataError:
            raise
        except self.client_errors as err:
            raise self._translate(err, key) from err

    @abc.abstractmethod
    def _translate(self, err: Exception, key: str) -> Exception:
        """The strata error for an SDK error."""

    async def _close_pool(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, True)
