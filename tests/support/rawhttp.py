"""A raw HTTP/1.1 client on a loopback socket, for bodies no well-behaved client sends: a
claimed length never delivered, a chunked body without end, bytes trickled one at a time.

Waiting is a socket timeout on the server's answer (select), never a sleep: the server either
answers within the bound or the test fails."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer within the bound
    sent: int  # body bytes the client managed to send
    seconds: float
    head: bytes
    body: bytes


def request(base: str, path: str, *, headers: dict[str, str], chunks: Iterable[bytes] = (),
            pace: float = 0.0, timeout: float = 10.0) -> Answer:
    """Send the head, then `chunks` one by one (waiting up to `pace` s for an answer between
    two), stopping as soon as the server answers; then read the status line."""
    url = urlsplit(base)
    start = time.monotonic()
    sent = 0
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80),
                                  timeout=timeout) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        try:
            for chunk in chunks:
                if time.monotonic() - start > timeout:
                    break
                readable, _, _ = select.select([sock], [], [], pace)
                if readable:
                    break  # the server has answered (or closed): stop sending
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection on us: its answer is in the buffer
            pass
        got = b""
        try:
            while not _complete(got) and time.monotonic() - start < timeout:
                readable, _, _ = select.select([sock], [], [], timeout)
                if not readable:
                    break
                data = sock.recv(65536)
                if not data:
                    break
                got += data
        except OSError:
            pass
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else None
    head, _, body = got.partition(b"\r\n\r\n")
    return Answer(status, sent, time.monotonic() - start, head, body)


def _complete(got: bytes) -> bool:
    """Whether the head and the whole body (by its Content-Length) have arrived."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def chunked(piece: bytes, times: int) -> Iterable[bytes]:
    """A chunked body of `times` pieces that never sends its final empty chunk."""
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    for _ in range(times):
        yield frame
