"""The child side of Conduit's `process` handler (docs/process-handlers.md), standard library only.

The host writes requests to our stdin and reads replies and pushes from our stdout, each
message framed as a uint32 big-endian length followed by one encoded Conduit message.
Payloads over 65,535 bytes travel as consecutive parts marked `more: true`; this module joins
and splits them, so handler code sees whole messages.

    from conduit_child import Child
    child = Child()
    for request in child.requests():
        child.reply(request, request.payload.upper())
"""
import struct
import sys

MAX_PART = 65535


def encode(headers, payload=b""):
    """One message (SPEC §1): header count, headers, payload length, payload."""
    if len(headers) > 255 or len(payload) > MAX_PART:
        raise ValueError("too many headers or a payload over one part")
    out = bytearray([len(headers)])
    for key, value in headers:
        k, v = key.encode(), str(value).encode()
        out += bytes([len(k)]) + k + struct.pack(">H", len(v)) + v
    out += struct.pack(">H", len(payload)) + payload
    return bytes(out)


def decode(data):
    """The headers (a list of pairs, in order) and payload of one encoded message."""
    count, offset, headers = data[0], 1, []
    for _ in range(count):
        klen = data[offset]
        key = data[offset + 1:offset + 1 + klen].decode()
        offset += 1 + klen
        (vlen,) = struct.unpack_from(">H", data, offset)
        value = data[offset + 2:offset + 2 + vlen].decode()
        offset += 2 + vlen
        headers.append((key, value))
    (plen,) = struct.unpack_from(">H", data, offset)
    payload = data[offset + 2:offset + 2 + plen]
    if len(payload) != plen or offset + 2 + plen != len(data):
        raise ValueError("a message whose payload length doesn't match its frame")
    return headers, payload


class Request:
    """A request from a client: `client` and `id` are the host's `x-client` and `x-request`."""

    def __init__(self, headers, payload):
        self.headers, self.payload = headers, payload
        self.client = self.get("x-client")
        self.id = self.get("x-request")
        self.route = self.get("route")

    def get(self, name, default=None):
        """The last value of a header, as the host's lookups do."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return default


class Child:
    def __init__(self, stdin=None, stdout=None):
        self._in = stdin or sys.stdin.buffer
        self._out = stdout or sys.stdout.buffer
        # stdout carries frames only: a stray print() would break the stream, so it goes to
        # stderr, which the host forwards to its log line by line.
        sys.stdout = sys.stderr

    def requests(self):
        """Yields each request (parts joined) until the host closes our stdin."""
        parts = []
        while True:
            head = self._in.read(4)
            if len(head) < 4:
                return
            (length,) = struct.unpack(">I", head)
            headers, payload = decode(self._in.read(length))
            if ("more", "true") in headers:
                parts.append(payload)
                continue
            yield Request(headers, b"".join(parts) + payload)
            parts = []

    def send(self, headers, payload=b""):
        """Writes one message, as parts when the payload needs them."""
        payload = bytes(payload)
        chunks = [payload[i:i + MAX_PART] for i in range(0, len(payload), MAX_PART)] or [b""]
        for index, chunk in enumerate(chunks):
            more = [("more", "true")] if index < len(chunks) - 1 else []
            message = encode(list(headers) + more, chunk)
            self._out.write(struct.pack(">I", len(message)) + message)
        self._out.flush()

    def reply(self, request, payload=b"", headers=()):
        """Answers `request`; the host adds its route and token."""
        self.send([("x-request", request.id)] + list(headers), payload)

    def fail(self, request, error_type, message):
        """Answers `request` with an error reply (`error: <error_type>`, the message as payload)."""
        self.send([("x-request", request.id), ("error", error_type)], message.encode())

    def push(self, client, headers, payload=b""):
        """Sends a message to client id `client` at any time (buffered by the host while it is away)."""
        self.send([("x-push-to", client)] + list(headers), payload)
