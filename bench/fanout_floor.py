"""The floor under the stream's fan-out: one frame written to N loopback sockets, no bridge.

``--receivers`` processes open ``--connections`` TCP connections to this one between them
and read them every 2 ms, as the latency benchmark's clients do (``bench/subscribers.py
--clock``); ten times a second one ``--size``-byte frame is written to every connection,
and the script prints how long one round of writes took (median and p90: from its first
write to its last, of any writer), how late after its due time it began, and the CPU it
cost per write.

By default one thread writes every connection, with ``os.write``; ``--via transports``
has it write through each connection's uvloop transport instead, with the checks the
stream's hub makes before each write (``bridge/hub.py``): what the transport costs.
``--writers 2`` splits each round in two: ``--split threads`` between two threads writing
with ``os.write`` (which lets the other thread run during the system call), ``--split
processes`` between two processes, each holding its half of the sockets and pinned to a
core of its own: whether a second core lowers the floor. As in ``bench/latency.py``, the
(first) writer is kept on the first core and the receivers on the others.
``--steer-loopback`` (root only) has the kernel do the receive half of each loopback
delivery on the other cores instead (Receive Packet Steering on ``lo``), for the run.

    .venv/bin/python bench/fanout_floor.py [--via sockets|transports]
        [--writers 1|2] [--split threads|processes] [--steer-loopback]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import peers

#: between the rounds of writes, as a 100 ms poll interval publishes
ROUND_EVERY = 0.1


def receive(port: int, connections: int, seconds: float) -> None:
    """In a receiver process: connect, then read whatever is ready every 2 ms."""
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


def write(fds: list[int], frame: bytes) -> None:
    for fd in fds:
        os.write(fd, frame)


#: a round of writes: when its first write began and its last one ended (Unix times)
Round = tuple[float, float]


def rounds_of_writes(fds: list[int], frame: bytes, starts: list[float]) -> list[Round]:
    """Write ``frame`` to every fd at each start time (Unix)."""
    rounds = []
    for start in starts:
        time.sleep(max(0.0, start - time.time()))
        began = time.time()
        write(fds, frame)
        rounds.append((began, time.time()))
    return rounds


Transports = tuple[asyncio.AbstractEventLoop, list[asyncio.Transport]]


def open_transports(sockets: list[socket.socket]) -> Transports:
    """A uvloop event loop, and a transport of it on each socket (as the bridge's are)."""
    import uvloop

    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()

    async def opened() -> list[asyncio.Transport]:
        transports = []
        for sock in sockets:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, sock)
            transports.append(transport)
        return transports

    return loop, loop.run_until_complete(opened())


def via_transports(opened: Transports, frame: bytes, starts: list[float]) -> list[Round]:
    """Each round written as the stream's hub writes (``bridge/hub.py``): through each
    connection's transport, when its buffer is empty and it is not closing."""
    loop, transports = opened

    async def rounds_in_loop() -> list[Round]:
        rounds = []
        for start in starts:
            await asyncio.sleep(max(0.0, start - time.time()))
            began = time.time()
            for transport in transports:
                if not transport.get_write_buffer_size() and not transport.is_closing():
                    transport.write(frame)
            rounds.append((began, time.time()))
        return rounds

    return loop.run_until_complete(rounds_in_loop())


def in_threads(shares: list[list[int]], frame: bytes, starts: list[float]) -> list[Round]:
    """Each round split between this thread and as many more as there are shares."""
    pool = ThreadPoolExecutor(len(shares) - 1)
    rounds = []
    for start in starts:
        time.sleep(max(0.0, start - time.time()))
        began = time.time()
        others = [pool.submit(write, share, frame) for share in shares[1:]]
        write(shares[0], frame)
        for other in others:
            other.result()
        rounds.append((began, time.time()))
    pool.shutdown()
    return rounds


def in_processes(
    shares: list[list[int]], frame: bytes, starts: list[float], cores: list[int]
) -> list[Round]:
    """Each round split between this process and one more per further share, each on a
    core of its own, starting each round at the same time: from the first write of any
    to the last. Prints how long each writer's own share took."""
    read_end, write_end = os.pipe()
    children = []
    for k, share in enumerate(shares[1:], start=1):
        pid = os.fork()
        if pid == 0:
            os.sched_setaffinity(0, {cores[k % len(cores)]})
            line = " ".join(f"{a!r},{b!r}" for a, b in rounds_of_writes(share, frame, starts))
            os.write(write_end, (line + "\n").encode())
            os._exit(0)
        children.append(pid)
    rounds = rounds_of_writes(shares[0], frame, starts)
    writers = [rounds]
    with os.fdopen(read_end) as results:
        for _ in children:
            pairs = [pair.split(",") for pair in results.readline().split()]
            writers.append([(float(a), float(b)) for a, b in pairs])
    for pid in children:
        os.waitpid(pid, 0)
    print(
        "each writer's share of a round (median): "
        + ", ".join(
            f"{statistics.median(b - a for a, b in own) * 1000:.2f} ms on core "
            f"{cores[k % len(cores)]}"
            for k, own in enumerate(writers)
        )
    )
    return [
        (min(a for a, _ in same), max(b for _, b in same)) for same in zip(*writers, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--writers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--split", choices=("threads", "processes"), default="threads")
    parser.add_argument(
        "--via",
        choices=("sockets", "transports"),
        default="sockets",
        help="one writer: os.write on each socket, or each connection's uvloop transport",
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--steer-loopback",
        action="store_true",
        help="steer loopback receive work to the cores other than the first (needs root)",
    )
    args = parser.parse_args()
    if args.via == "transports" and args.writers != 1:
        parser.error("--via transports writes with one writer")
    with peers.loopback_steered_to(
        set(sorted(os.sched_getaffinity(0))[1:]) if args.steer_loopback else None
    ):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    cores = sorted(os.sched_getaffinity(0))
    listener = socket.create_server(("127.0.0.1", 0), backlog=args.connections)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    receivers = []
    for i in range(args.receivers):
        count = args.connections // args.receivers + (i < args.connections % args.receivers)
        receiver = os.fork()
        if receiver == 0:
            listener.close()
            if len(cores) > 1:
                os.sched_setaffinity(0, set(cores[1:]))
            receive(port, count, args.seconds + 10)
            os._exit(0)
        receivers.append(receiver)
        accepted += [listener.accept()[0] for _ in range(count)]
    for sock in accepted:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
    os.sched_setaffinity(0, {cores[0]})
    fds = [sock.fileno() for sock in accepted]
    # each writer a block of the connections, as each receiver holds a block of them
    shares = [fds[k * len(fds) // args.writers : (k + 1) * len(fds) // args.writers]
              for k in range(args.writers)]  # fmt: skip
    frame = b"x" * args.size
    first = time.time() + 1.0
    starts = [first + i * ROUND_EVERY for i in range(int(args.seconds / ROUND_EVERY))]
    opened = open_transports(accepted) if args.via == "transports" else None
    before = os.times()
    if opened is not None:
        rounds = via_transports(opened, frame, starts)
    elif args.writers == 1:
        rounds = rounds_of_writes(fds, frame, starts)
    elif args.split == "threads":
        rounds = in_threads(shares, frame, starts)
    else:
        rounds = in_processes(shares, frame, starts, cores)
    after = os.times()
    writes = len(starts) * len(fds)
    took = sorted(b - a for a, b in rounds)
    late = statistics.median(a - start for (a, _), start in zip(rounds, starts, strict=True))
    # the writer processes are counted too: they have been waited for
    user = after.user + after.children_user - before.user - before.children_user
    system = after.system + after.children_system - before.system - before.children_system
    print(
        f"{peers.loopback_steering()}; "
        f"{args.connections} sockets, {args.size} bytes, {args.writers} writer(s)"
        f"{' through transports' if args.via == 'transports' else ''}"
        f"{f' ({args.split})' if args.writers > 1 else ''}: a round of writes took "
        f"{statistics.median(took) * 1000:.2f} ms (median), "
        f"{took[int(len(took) * 0.9)] * 1000:.2f} ms (p90), from its first write to its "
        f"last, which began {late * 1000:.2f} ms after the round was due (median); per "
        f"write {user / writes * 1e6:.2f} µs user, {system / writes * 1e6:.2f} µs system"
    )
    for receiver in receivers:
        os.kill(receiver, 15)
        os.waitpid(receiver, 0)


if __name__ == "__main__":
    main()
