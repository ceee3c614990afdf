# SPDX-License-Identifier: Apache-2.0
"""Just enough HTTP/2 to send what a real gRPC client library never would."""

import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_literal(name, value):
    # Literal header field without indexing, new name, no Huffman.
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


def grpc_headers(path):
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
              (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
    return b"".join(_hpack_literal(n, v) for n, v in fields)


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def start(path, timeout=10):
    s = connect(path, timeout)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return s


def send_call(s, method, grpc_frame, stream=1, end_stream=True):
    s.sendall(frame(HEADERS, 0x4, stream, grpc_headers(method)))
    if grpc_frame is not None:
        s.sendall(frame(DATA, 0x1 if end_stream else 0, stream, grpc_frame))


def split_frames(buf):
    """The complete frames at the start of buf: ([(type, flags, stream, payload)], the rest)."""
    frames = []
    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
        length = int.from_bytes(buf[:3], "big")
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + length]))
        buf = buf[9 + length:]
    return frames, buf


def read_outcome(s, stream=1):
    """Reads frames until the server ends our stream or the connection.
    Returns "headers", "rst", "goaway", "closed" or "timeout"."""
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return "closed"
        except socket.timeout:
            return "timeout"
        if not chunk:
            return "closed"
        frames, buf = split_frames(buf + chunk)
        for ftype, flags, sid, _ in frames:
            if ftype == SETTINGS and not flags & 1:
                try:
                    s.sendall(frame(SETTINGS, 1, 0))
                except (BrokenPipeError, ConnectionResetError):
                    return "closed"
            if sid == stream and ftype == HEADERS and flags & 0x1:
                return "headers"  # trailers with END_STREAM: the call got a status
            if sid == stream and ftype == RST_STREAM:
                return "rst"
            if ftype == GOAWAY:
                return "goaway"
