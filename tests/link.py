"""A TCP link the tests can cut: a small forwarding proxy in front of Asterisk's ARI.

Call control reaches ARI through it (HOTLINE_ARI_URL), so a test can drop the events
WebSocket and every REST connection at once, exactly as a network fault or an Asterisk
HTTP restart would, and keep the link refusing for a while so events are missed.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


class CuttableLink:
    """Forwards 127.0.0.1:listen_port to 127.0.0.1:target_port until cut."""

    def __init__(self, listen_port: int, target_port: int):
        self.listen_port = listen_port
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", listen_port), reuse_port=False)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True, name="link-accept").start()

    def cut(self, down_for: float) -> None:
        """Reset every open connection; refuse new ones for down_for seconds."""
        with self._lock:
            self._refuse_until = time.monotonic() + down_for
            doomed = list(self._open)
            self._open.clear()
            self.cuts += 1
        for s in doomed:
            _reset(s)

    def close(self) -> None:
        self._server.close()
        self.cut(0)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            mine = src in self._open
            self._open.discard(src)
            self._open.discard(dst)
        if mine:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _reset(s: socket.socket) -> None:
    """Close with an RST, as a dropped connection looks to the other side."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        # Wakes a thread blocked in recv() without sending a FIN; close() then sends the RST.
        s.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    s.close()
