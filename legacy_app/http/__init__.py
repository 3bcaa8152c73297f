"""HTTP's edges: one pure ASGI middleware per file, and the error handlers."""
