"""The HTTP server around the ASGI app: uvicorn, with the connection limits it lacks (header and
body timeouts, connection and request caps, bounded send buffers), structured server logs and
freed memory handed back to the system. docs/SECURITY.md lists every limit."""
