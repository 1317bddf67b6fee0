"""kubegate's HTTP/1.1 server: httptools parses, asyncio transports carry the bytes (uvloop's when it is
installed), and the routes are `web.routes.Route` declarations.

Why its own server rather than aiohttp's or an ASGI server: measured with kubegate's real handlers (see
bench/README.md, "The server's stack"), the framework was most of the CPU of an answer. This package is only
the part of a server kubegate needs: routing by template, limits and timeouts on what clients send,
keep-alive and pipelining, TLS, graceful shutdown and the access log. Parsing (request line, headers,
chunked bodies) is httptools', the C parser behind uvicorn.
"""
