/*
 * Writing to a socket without waiting when it can take the bytes at once.
 *
 * uv_write alone arms the socket's write watcher and defers its callback to
 * the next loop iteration: two epoll_ctl calls per write, and a loop turn,
 * although a loopback or idle socket almost always takes the whole message at
 * once. So the bytes go out with uv_try_write first; only what the socket
 * refused waits in a uv_write.
 */
#include "proxy.h"

int proxy_write(uv_stream_t *s, uv_write_t *req, uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    int sent = uv_try_write(s, bufs, n);
    if (sent < 0 && sent != UV_EAGAIN)
        return sent;
    size_t left = sent > 0 ? (size_t)sent : 0;
    unsigned i = 0;
    while (i < n && left >= bufs[i].len)
        left -= bufs[i++].len;
    if (i == n)
        return 1;
    bufs[i].base += left;
    bufs[i].len -= left;
    int r = uv_write(req, s, bufs + i, n - i, cb);
    return r < 0 ? r : 0;
}
