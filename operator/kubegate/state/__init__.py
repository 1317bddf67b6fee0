"""In-memory mirrors of what the operator (and the servers' deny-list) publish in the Kubernetes API, and
the watchers that keep them current: the validation config (static tokens), the client-token signing keys
(public half), the revocations. Each mirror keeps its last good copy when the API goes away, and reports
its own readiness. Used by the server and, without it, by anything that verifies (no kopf, no HTTP server).
"""
