"""The one exception type of the dev cluster: its message is meant for the user as it is."""

from __future__ import annotations


class DevClusterError(Exception):
    """Starting, stopping or inspecting the local control plane failed; the message says what to do."""
