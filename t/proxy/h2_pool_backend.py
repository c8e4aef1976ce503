#!/usr/bin/python3
"""HTTP/2 (h2c, prior knowledge) backend with a small stream limit, for the
upstream session pool test (t/3g-proxy-h2-pool.t). python3-h2 on asyncio.

Usage: h2_pool_backend.py MAX_CONCURRENT_STREAMS
Prints "H2PORT CONTROLPORT" and serves until killed.

HTTP/2 paths (each answers "conn=C stream=S\n", C numbering connections
from 1 in accept order):
  /slow?ms=N   answers after N ms
  /goaway      answers, then sends GOAWAY (NO_ERROR, last stream id = this
               stream): the streams in flight on that connection still
               complete, no new one may start
The control port answers one line per TCP connection and closes:
  accepted=A open=O peak_open=P inflight=I max_streams=M refused=R after_goaway=G
A: connections accepted, O: open now, P: most open at once, I: requests in
flight now, M: most requests in flight at once on one connection, R:
streams refused for exceeding the limit, G: requests that arrived on a
connection after its GOAWAY.
"""
import asyncio
import sys
import urllib.parse

import h2.config
import h2.errors
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

LIMIT = int(sys.argv[1])
STATS = {"accepted": 0, "open": 0, "peak_open": 0, "inflight": 0, "max_streams": 0, "refused": 0, "after_goaway": 0}


class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        STATS["accepted"] += 1
        STATS["open"] += 1
        STATS["peak_open"] = max(STATS["peak_open"], STATS["open"])
        self.id = STATS["accepted"]
        self.transport = transport
        self.streams = {}
        self.active = set()
        self.goaway_sent = False
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: LIMIT})
        self.h2.initiate_connection()
        # Advertised above; enforced below, refusing the stream (as nginx
        # does) rather than h2's connection error, so that it is counted.
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1 << 20})
        self.flush()

    def connection_lost(self, exc):
        STATS["open"] -= 1
        STATS["inflight"] -= len(self.active)
        self.active.clear()

    def flush(self):
        data = self.h2.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data):
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                if len(self.active) >= LIMIT:
                    STATS["refused"] += 1
                    self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    continue
                if self.goaway_sent:
                    STATS["after_goaway"] += 1
                self.active.add(ev.stream_id)
                STATS["inflight"] += 1
                STATS["max_streams"] = max(STATS["max_streams"], len(self.active))
                self.streams[ev.stream_id] = dict(ev.headers).get(":path", "/")
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in self.streams:
                self.start(ev.stream_id, self.streams.pop(ev.stream_id))
            elif isinstance(ev, h2.events.StreamReset):
                self.streams.pop(ev.stream_id, None)
                self.done(ev.stream_id)
        self.flush()

    def done(self, sid):
        if sid in self.active:
            self.active.discard(sid)
            STATS["inflight"] -= 1

    def start(self, sid, path):
        url = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/slow":
            asyncio.get_running_loop().call_later(int(q.get("ms", "0")) / 1000, self.answer, sid, False)
        elif url.path == "/goaway":
            self.answer(sid, True)
        else:
            self.answer(sid, False, 404)

    def answer(self, sid, goaway, status=200):
        if self.transport.is_closing() or sid not in self.active:
            return
        body = b"conn=%d stream=%d\n" % (self.id, sid)
        self.h2.send_headers(sid, [(":status", str(status)), ("content-length", str(len(body)))])
        self.h2.send_data(sid, body, end_stream=True)
        self.done(sid)
        if not goaway:
            self.flush()
            return
        # Written directly: h2 would refuse to send on the streams still in
        # flight once it has sent a GOAWAY itself. In the same write as the
        # answer, so that the proxy cannot relay the answer (and take the
        # test's next request) before the GOAWAY has arrived.
        self.goaway_sent = True
        data = self.h2.data_to_send() + GoAwayFrame(stream_id=0, last_stream_id=sid, error_code=0).serialize()
        if not self.transport.is_closing():
            self.transport.write(data)


class Control(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write((" ".join("%s=%d" % kv for kv in STATS.items()) + "\n").encode())
        transport.close()


async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Conn, "127.0.0.1", 0)
    ctl = await loop.create_server(Control, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
