"""The lowest layer: formats every process agrees on (no I/O, imports nothing else of kubegate).

Settings, the operator, the server and the verification core all import from here, never the reverse.
"""
