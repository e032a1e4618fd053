"""Remote separation: the ``vsep serve`` HTTP server and :class:`AudioSeparatorAPIClient`.

The server (``vsep_core.remote.server``) needs the ``server`` extra and is imported only by
``vsep serve``; the client needs nothing beyond vsep's own dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vsep_core.remote.api_client import AudioSeparatorAPIClient

__all__ = ["AudioSeparatorAPIClient"]


def __getattr__(name: str) -> Any:
    if name == "AudioSeparatorAPIClient":
        from vsep_core.remote.api_client import AudioSeparatorAPIClient

        return AudioSeparatorAPIClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
