"""Connecting to GCS: a store URL's settings, parsed strictly, the service-account key
that signs URLs, the client (or the emulator's) and V4 URL signing.
:mod:`trace_store.backends.gcs` is the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import google.auth
from google.auth.credentials import AnonymousCredentials, Signing
from google.auth.exceptions import DefaultCredentialsError
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from trace_store.backends.url import SETTING
from trace_store.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from google.auth.credentials import Credentials

    from trace_store.config import Config

SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
#: Data calls give up (and report the store unavailable) after this long.
RETRY = DEFAULT_RETRY.with_timeout(15.0)
#: Per request: seconds to connect, and to wait for each read of the answer. A hung
#: server is then noticed within seconds (every trace object is small, and a read
#: timeout bounds the wait for each chunk, not the whole transfer).
TIMEOUT = (2.0, 5.0)


@dataclass(frozen=True, slots=True)
class GCSSettings:
    """Where the store lives and which key signs its URLs."""

    bucket: str
    prefix: str = ""
    credentials_file: str | None = None
    emulator_host: str | None = None

    @classmethod
    def from_query(
        cls, bucket: str, prefix: str, query: Mapping[str, str], config: Config
    ) -> GCSSettings:
        """``?credentials=`` (a service-account key file); the emulator from ``config``."""
        emulator = config.get("STORAGE_EMULATOR_HOST")
        if emulator is not None and "://" not in emulator:
            emulator = f"http://{emulator}"  # the variable is often given as host:port
        return cls(bucket, prefix.strip("/"), query.get("credentials") or None, emulator)


def utc_now() -> datetime:
    """The current time, timezone-aware (the store's default clock)."""
    return datetime.now(UTC)


def _load_key(path: str) -> service_account.Credentials:
    try:
        return service_account.Credentials.from_service_account_file(path, scopes=SCOPES)  # type: ignore[no-untyped-call, no-any-return]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(
            f"{SETTING}: gs:// credentials={path!r} is not a readable service-account"
            f" key file ({err})"
        ) from None


def make_client(settings: GCSSettings) -> tuple[storage.Client, Credentials | None]:
    """The data client and the credentials that sign URLs (``None``: cannot sign)."""
    key = _load_key(settings.credentials_file) if settings.credentials_file else None
    if settings.emulator_host:
        # The emulator accepts no real tokens: data calls are anonymous, the key signs.
        client = storage.Client(
            project="strata-emulator",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": settings.emulator_host},
        )
        return client, key
    if key is not None:
        return storage.Client(project=key.project_id, credentials=key), key
    try:
        credentials, project = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as err:
        raise ConfigError(
            f"{SETTING}: no Google credentials for gs://{settings.bucket}; add"
            " ?credentials=/path/key.json or set GOOGLE_APPLICATION_CREDENTIALS"
            f" ({err})"
        ) from None
    return storage.Client(project=project, credentials=credentials), credentials


def sign_blob_url(
    blob: storage.Blob,
    credentials: Credentials,
    expiration: timedelta,
    *,
    api_access_endpoint: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    query_parameters: dict[str, str] | None = None,
) -> str:
    """A V4 signed URL for ``blob``: the one signing path the store uses.

    Service-account keys sign locally. Other credentials (GCE metadata, workload
    identity) sign through the IAM ``signBlob`` API with their service-account email.
    """
    extra: dict[str, Any] = {}
    if not isinstance(credentials, Signing):
        email = getattr(credentials, "service_account_email", None)
        if not email:
            raise ConfigError(
                f"{SETTING}: signing gs:// URLs needs a service account; add"
                " ?credentials=/path/key.json"
            )
        if not credentials.valid:
            credentials.refresh(AuthRequest())  # type: ignore[no-untyped-call]
        extra = {"service_account_email": email, "access_token": credentials.token}
    return str(
        blob.generate_signed_url(
            version="v4",
            expiration=expiration,
            method=method,
            credentials=credentials,
            api_access_endpoint=api_access_endpoint,
            headers=headers,
            query_parameters=query_parameters,
            **extra,
        )
    )
