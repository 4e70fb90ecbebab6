"""The threaded HTTP server under the local cloud's two front doors (the API gateway and moto's
front server): it knows its open connections so that stopping can close idle keep-alive ones,
binds without a reverse DNS lookup, and treats a client that leaves mid-exchange as ordinary."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that stalls start-up on
        # machines without a resolver; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client left mid-exchange
            logger.debug("connection from %s closed early", client_address[0])
        else:
            logger.exception("%s failed on a request from %s", type(self).__name__, client_address[0])

    def close_connections(self) -> None:
        # Idle keep-alive connections would otherwise hold their threads until the client leaves.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
