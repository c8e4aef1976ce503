"""Where the pods' telemetry ends up: small counting servers run by the runner.

LogSink takes what a log shipper sends over TCP, either a stream of NDJSON lines or HTTP/1.1
POSTs with NDJSON bodies (one POST = one batch). Each record's text is searched for the
"seq=<n> pod=<name>" the app wrote, so lost and duplicated lines can be counted per pod.
StatsdSink counts statsd datagrams and lines over UDP.
Both run in one background thread on a selector and bind only bench addresses.
"""
import re
import selectors
import socket
import threading

SEQ_RE = re.compile(rb"seq=(\d+) pod=([A-Za-z0-9_.-]+)")


class _Server:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.stop_r, self.stop_w = socket.socketpair()
        self.sel.register(self.stop_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.lock = threading.Lock()

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        while True:
            for key, _ in self.sel.select():
                if key.data is None:
                    return
                key.data(key.fileobj)

    def close(self):
        self.stop_w.send(b"x")
        self.thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()
        self.stop_w.close()


class LogSink(_Server):
    def __init__(self, address):
        super().__init__()
        host, port = address.rsplit(":", 1)
        self.listener = socket.create_server((host, int(port)), reuse_port=False)
        self.listener.setblocking(False)
        self.address = f"{host}:{self.listener.getsockname()[1]}"
        self.sel.register(self.listener, selectors.EVENT_READ, self._accept)
        self.bufs = {}
        self.connections = self.batches = self.records = self.bad = 0
        self.seen = {}          # pod -> {seq: times received}

    def _accept(self, lsock):
        conn, _ = lsock.accept()
        conn.setblocking(False)
        self.bufs[conn] = b""
        with self.lock:
            self.connections += 1
        self.sel.register(conn, selectors.EVENT_READ, self._read)

    def _read(self, conn):
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(conn)
            conn.close()
            del self.bufs[conn]
            return
        buf = self.bufs[conn] + data
        if buf.startswith(b"POST "):
            buf = self._http(conn, buf)
        else:
            *lines, buf = buf.split(b"\n")
            with self.lock:
                for line in lines:
                    self._record(line)
        self.bufs[conn] = buf

    def _http(self, conn, buf):
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf
            head = buf[:end].decode("latin-1").lower()
            m = re.search(r"\ncontent-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(buf) < end + 4 + n:
                return buf
            body, buf = buf[end + 4:end + 4 + n], buf[end + 4 + n:]
            with self.lock:
                self.batches += 1
                for line in body.split(b"\n"):
                    self._record(line)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    def _record(self, line):
        if not line.strip():
            return
        self.records += 1
        m = SEQ_RE.search(line)
        if not m:
            self.bad += 1
            return
        per_pod = self.seen.setdefault(m.group(2).decode(), {})
        seq = int(m.group(1))
        per_pod[seq] = per_pod.get(seq, 0) + 1

    def tally(self, written):
        """written: {pod: lines written}. Returns received, lost, duplicated, connections, batches."""
        with self.lock:
            lost = dup = 0
            for pod, n in written.items():
                got = self.seen.get(pod, {})
                lost += sum(1 for s in range(1, n + 1) if s not in got)
                dup += sum(c - 1 for c in got.values() if c > 1)
            return {"received": self.records, "lost": lost, "duplicated": dup, "unparsed": self.bad,
                    "connections": self.connections, "batches": self.batches}


class StatsdSink(_Server):
    def __init__(self, address):
        super().__init__()
        host, port = address.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, int(port)))
        self.sock.setblocking(False)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self.sel.register(self.sock, selectors.EVENT_READ, self._read)
        self.datagrams = self.lines = 0

    def _read(self, sock):
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            with self.lock:
                self.datagrams += 1
                self.lines += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)

    def tally(self):
        with self.lock:
            return {"datagrams": self.datagrams, "lines": self.lines}
