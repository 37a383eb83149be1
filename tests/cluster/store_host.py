"""What runs on the cluster's ``store`` host: the S3 test server (moto) with one bucket, and an HTTP
server with the demo images (``/files/<name>``, anything else 404), both on the host's own address.

    python tests/cluster/store_host.py IP S3_PORT HTTP_PORT BUCKET
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BROKEN = b"\xff\xd8\xff\xe0 this is not really a jpeg"


def image_files() -> dict[str, bytes]:
    """The demo images by name, plus a corrupt ``broken.jpg``."""
    from regionset.pipelines.tools.demo.corpus import demo_images

    return {**{img.name: img.data for img in demo_images()}, "broken.jpg": BROKEN}


def serve_images(ip: str, port: int, files: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            name = self.path.removeprefix("/files/")
            body = files.get(name) if self.path.startswith("/files/") else None
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "image/jpeg" if body is not None else "text/plain")
            body = body if body is not None else b"not here"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((ip, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(ip: str, s3_port: str, http_port: str, bucket: str) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    s3 = ThreadedMotoServer(ip_address=ip, port=int(s3_port), verbose=False)
    s3.start()
    boto3.client("s3", endpoint_url=f"http://{ip}:{s3_port}").create_bucket(Bucket=bucket)
    serve_images(ip, int(http_port), image_files())
    print(f"store: s3 on {ip}:{s3_port}, images on {ip}:{http_port}", flush=True)
    threading.Event().wait()  # until the host is killed


if __name__ == "__main__":
    main(*sys.argv[1:])
