"""The offline demo: sample images, a loopback HTTP server, and ``regionset demo``."""
