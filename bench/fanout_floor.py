"""The floor under the stream's fan-out: one frame written to N loopback sockets, no bridge.

A receiver process opens ``--connections`` TCP connections to this one and reads them
every 2 ms, as the latency benchmark's clients do (``bench/subscribers.py --clock``);
this process writes one ``--size``-byte frame to every connection, ten times a second, and
prints how long one round of writes took (median and p90) and the CPU it cost per write.
``--threads 2`` splits each round between two threads writing with ``os.write`` (which
lets other threads run during the system call), to see whether a second core helps.

    .venv/bin/python bench/fanout_floor.py [--threads 1|2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor


def receive(port: int, connections: int, seconds: float) -> None:
    """In the receiver process: connect, then read whatever is ready every 2 ms."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    poller = select.epoll()
    by_fd = {}
    for sock in sockets:
        sock.setblocking(False)
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = sock
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for fd, _ in poller.poll(0.5):
            with contextlib.suppress(BlockingIOError):
                by_fd[fd].recv(65536)
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=args.connections)
    port = listener.getsockname()[1]
    receiver = os.fork()
    if receiver == 0:
        listener.close()
        receive(port, args.connections, args.seconds + 10)
        os._exit(0)
    accepted = [listener.accept()[0] for _ in range(args.connections)]
    for sock in accepted:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    fds = [sock.fileno() for sock in accepted]
    frame = b"x" * args.size
    halves = (fds[::2], fds[1::2])

    def write(share: list[int]) -> None:
        for fd in share:
            os.write(fd, frame)

    pool = ThreadPoolExecutor(1)
    rounds: list[float] = []
    before = os.times()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        if args.threads == 1:
            write(fds)
        else:
            other = pool.submit(write, halves[1])
            write(halves[0])
            other.result()
        rounds.append(time.perf_counter() - started)
        time.sleep(0.1)
    after = os.times()
    writes = len(rounds) * args.connections
    rounds.sort()
    print(
        f"{args.connections} sockets, {args.size} bytes, {args.threads} thread(s): a round of "
        f"writes took {rounds[len(rounds) // 2] * 1000:.2f} ms (median), "
        f"{rounds[int(len(rounds) * 0.9)] * 1000:.2f} ms (p90); per write "
        f"{(after.user - before.user) / writes * 1e6:.2f} µs user, "
        f"{(after.system - before.system) / writes * 1e6:.2f} µs system"
    )
    os.kill(receiver, 15)
    os.waitpid(receiver, 0)


if __name__ == "__main__":
    main()
