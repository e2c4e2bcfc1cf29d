"""Object-store backends behind one interface (:class:`~trace_store.backends.base.ObjectStore`)."""

from trace_store.backends.base import ObjectInfo, ObjectStore, SignedURL

__all__ = ["ObjectInfo", "ObjectStore", "SignedURL"]
