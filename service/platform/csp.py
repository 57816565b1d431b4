"""The Content-Security-Policy: one policy object, serialized in one place."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# No inline script or style, nothing from another origin, no framing, no plugins.
POLICY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "default-src": ("'none'",),
        "script-src": ("'self'",),
        "style-src": ("'self'",),
        "img-src": ("'self'", "blob:", "data:"),
        "connect-src": ("'self'",),
        "font-src": ("'self'",),
        "form-action": ("'self'",),
        "frame-ancestors": ("'none'",),
        "base-uri": ("'none'",),
        "worker-src": ("'self'",),
        "object-src": ("'none'",),
    }
)


def serialize(policy: Mapping[str, tuple[str, ...]] = POLICY) -> str:
    return "; ".join(" ".join((directive, *sources)) for directive, sources in policy.items())


HEADER_VALUE = serialize()
