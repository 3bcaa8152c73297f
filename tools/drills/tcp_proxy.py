"""A TCP proxy that can cut every connection and refuse new ones, or black-hole them: a database outage
or a silent network partition on demand."""
import socket
import threading
from typing import List, Optional


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: Optional[socket.socket] = None
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()  # cleared: a black hole
        self._flowing.set()

    def start(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after a cut
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and reset the open ones, as a crashed server would."""
        # shutdown() rather than close() alone: it wakes the threads blocked in accept()/recv().
        if self._listener is not None:
            _shutdown(self._listener)
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                _shutdown(sock)
            self._sockets.clear()
        self._flowing.set()  # pipes held by a black hole wake to find their sockets shut

    def black_hole(self) -> None:
        """Stop forwarding in both directions without closing anything, as a partition does: no reset,
        no FIN; connections stay open and new ones are accepted, but no byte gets through."""
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again, what was held back first."""
        self._flowing.set()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.extend([client, upstream])
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = source.recv(65536)
                self._flowing.wait()  # a recv already waiting when the black hole began passes nothing on
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(source)
            _shutdown(sink)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
