"""One package per authentication method, each owning its token format, verification and HTTP handlers."""
