"""HTTP plumbing shared by every method and the server, below both: the request view handlers read, the
response value they return, error answers, JSON bodies, per-route authentication declarations and the
per-request credential check.

Only `web.httpserver` knows HTTP on the wire; everything else here, and every handler, works on
`Request` and `Response` values and is testable without a server.
"""
