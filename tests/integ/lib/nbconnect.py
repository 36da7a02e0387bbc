#!/usr/bin/env python3
"""A non-blocking connect while the server's router is frozen (SIGSTOP).

    nbconnect.py IP PORT REFUSED_PORT ROUTER_PID

The app must get EINPROGRESS at once, see nothing while the other host has
not answered, and then the result as the kernel gives it:
- "poll": a thread asleep in poll() (no epoll) wakes with POLLOUT once the
  router is continued; SO_ERROR 0; an HTTP request to PORT is answered;
- "epoll": the same with an edge-triggered epoll registration made before
  connect(), kept across the swap;
- "closed": the app closes the socket while it connects and a new socket
  takes its number: that one stays fresh (not connected) once the answer
  comes;
- "refused": REFUSED_PORT has no listener: EPOLLOUT|EPOLLERR|EPOLLHUP and
  SO_ERROR ECONNREFUSED.
Prints one line per case: NAME ERRNO CONNECT_MS EARLY_EVENTS EVENTS SO_ERROR
EXTRA; the caller compares them with what a kernel connect gives."""
import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time

ip, port, refused_port, router = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def later_cont(ms):
    """SIGCONT to the router in ms, from another process (we may be asleep)."""
    return subprocess.Popen(["sh", "-c", f"sleep {ms / 1000}; kill -CONT {router}"])


def start(s, p):
    os.kill(router, signal.SIGSTOP)
    t = time.monotonic()
    r = s.connect_ex((ip, p))
    return errno.errorcode.get(r, str(r)), round((time.monotonic() - t) * 1000)


def http(s):
    s.setblocking(True)
    s.settimeout(5)
    s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    return data.split(b"\r\n", 1)[0].decode(errors="replace").replace(" ", "_")


def so_error(s):
    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno.errorcode.get(e, str(e)) if e else "0"


def names(ev, table):
    return "|".join(n for n, b in table if ev & b) or "-"


POLL = [("IN", select.POLLIN), ("OUT", select.POLLOUT), ("ERR", select.POLLERR),
        ("HUP", select.POLLHUP)]
EPOLL = [("IN", select.EPOLLIN), ("OUT", select.EPOLLOUT), ("ERR", select.EPOLLERR),
         ("HUP", select.EPOLLHUP)]

try:
    # poll: asleep when the answer comes
    s = socket.socket()
    s.setblocking(False)
    e, ms = start(s, port)
    p = select.poll()
    p.register(s.fileno(), select.POLLOUT)
    early = p.poll(300)
    c = later_cont(300)
    ev = p.poll(5000)
    c.wait()
    print("poll", e, ms, names(sum(x for _, x in early), POLL), names(sum(x for _, x in ev), POLL),
          so_error(s), http(s) if ev else "-", flush=True)
    s.close()

    # epoll, edge-triggered, registered before connect
    s = socket.socket()
    s.setblocking(False)
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN | select.EPOLLET)
    e, ms = start(s, port)
    early = ep.poll(0.3)
    os.kill(router, signal.SIGCONT)
    ev = ep.poll(5)
    print("epoll", e, ms, names(sum(x for _, x in early), EPOLL),
          names(sum(x for _, x in ev), EPOLL), so_error(s), http(s) if ev else "-", flush=True)
    s.close()

    # closed while connecting: the fd's number, reused at once by a new
    # socket, must not receive the connection when the answer comes
    s = socket.socket()
    s.setblocking(False)
    e, ms = start(s, port)
    n = s.fileno()
    s.close()
    t = socket.socket()
    os.kill(router, signal.SIGCONT)
    time.sleep(0.5)
    try:
        t.getpeername()
        state = "connected"
    except OSError as x:
        state = "fresh" if x.errno == errno.ENOTCONN else errno.errorcode.get(x.errno, "?")
    print("closed", e, ms, "-", "same-fd" if t.fileno() == n else "other-fd", state, "-",
          flush=True)
    t.close()

    # refused
    s = socket.socket()
    s.setblocking(False)
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN)
    e, ms = start(s, refused_port)
    early = ep.poll(0.3)
    os.kill(router, signal.SIGCONT)
    ev = ep.poll(5)
    print("refused", e, ms, names(sum(x for _, x in early), EPOLL),
          names(sum(x for _, x in ev), EPOLL), so_error(s), "-", flush=True)
    s.close()
finally:
    os.kill(router, signal.SIGCONT)
