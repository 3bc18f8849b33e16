"""The gRPC service's HTTP/2 transport, frame by frame, with the h2 library (hyper-h2) as an independent client.

Checks what the gRPC clients never send: requests that are not gRPC, methods the service does not have, compressed
messages, broken length prefixes, messages over the limit (answered early, the stream reset, the connection kept),
messages larger than the flow-control windows, many calls interleaved on one connection, and the cap on what one
connection may hold unfinished.

    python grpc_transport.py HOST PORT MESSAGE_LIMIT BODY_LIMIT
"""
import socket, struct, sys, urllib.parse

import h2.config, h2.connection, h2.events, h2.exceptions
import tritonclient.grpc.service_pb2 as pb

host, port, message_limit, body_limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
failures = []
PENGUIN = [("island", "BYTES", b"Biscoe"), ("bill_length_mm", "FP64", 45.2), ("bill_depth_mm", "FP64", 14.8),
           ("flipper_length_mm", "FP64", 212.0), ("body_mass_g", "FP64", 5200.0), ("sex", "BYTES", b"female"),
           ("year", "FP64", 2008.0)]


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def framed(message, flag=0):
    return bytes([flag]) + struct.pack(">I", len(message)) + message


def penguins(rows, id=""):
    request = pb.ModelInferRequest(model_name="penguins", id=id)
    for name, datatype, value in PENGUIN:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[rows])
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend([value] * rows)
        else:
            tensor.contents.fp64_contents.extend([value] * rows)
    return request.SerializeToString()


class Connection:
    """One HTTP/2 connection; answers are read as they come, windows given back as data is read."""

    def __init__(self):
        self.sock = socket.create_connection((host, port), timeout=20)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.flush()
        self.streams = {}

    def flush(self):
        self.sock.sendall(self.h2.data_to_send())

    def open(self, path="/inference.GRPCInferenceService/ModelInfer", content_type="application/grpc", method="POST",
             extra=(), body=b"", end=True):
        stream = self.h2.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":path", path), (":authority", f"{host}:{port}"),
                   ("content-type", content_type), ("te", "trailers"), *extra]
        self.h2.send_headers(stream, headers, end_stream=end and not body)
        self.streams[stream] = {"headers": {}, "data": b"", "trailers": {}, "ended": False, "reset": None}
        self.flush()
        if body:
            self.send(stream, body, end)
        return stream

    def send(self, stream, body, end=True):
        """Sends as the windows allow; stops when the server has answered and reset the stream."""
        while body:
            state = self.streams[stream]
            if state["reset"] is not None or state["ended"]:
                return False
            window = min(self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size)
            if window <= 0:
                self.read()
                continue
            chunk, body = body[:window], body[window:]
            try:
                self.h2.send_data(stream, chunk, end_stream=end and not body)
            except h2.exceptions.StreamClosedError:
                return False
            self.flush()
        return True

    def read(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.h2.receive_data(data):
            state = self.streams.get(getattr(event, "stream_id", None))
            if isinstance(event, h2.events.ResponseReceived):
                state["headers"] = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                state["data"] += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                state["trailers"] = dict(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                state["ended"] = True
            elif isinstance(event, h2.events.StreamReset) and state is not None:
                state["reset"] = event.error_code
        self.flush()

    def answer(self, stream):
        """(HTTP status, gRPC status, gRPC message, the response message) once the server has ended the stream."""
        state = self.streams[stream]
        while not state["ended"]:
            self.read()
        fields = {**state["headers"], **state["trailers"]}
        status = fields.get("grpc-status")
        message = urllib.parse.unquote(fields.get("grpc-message", ""))
        body = state["data"][5:] if len(state["data"]) >= 5 else None
        return fields.get(":status"), None if status is None else int(status), message, body

    def call(self, **arguments):
        return self.answer(self.open(**arguments))


def expect(name, answer, http="200", code=None, message=None, prefix=None):
    status, grpc_status, text, _ = answer
    ok = status == http and grpc_status == code and (message is None or text == message) \
        and (prefix is None or text.startswith(prefix))
    check(name, ok, f"HTTP {status}, grpc-status {grpc_status}: {text!r}")


connection = Connection()
live = lambda: connection.call(path="/inference.GRPCInferenceService/ServerLive", body=framed(b""))

# Not gRPC, or not this service's.
expect("another content type is HTTP 415", connection.call(content_type="application/json", body=b"{}"), http="415")
expect("GET is HTTP 405", connection.call(method="GET"), http="405")
expect("an unknown method is UNIMPLEMENTED", connection.call(path="/inference.GRPCInferenceService/ModelStreamInfer", body=framed(b"")),
       code=12, message="no method /inference.GRPCInferenceService/ModelStreamInfer on this server")
expect("a compressed call is UNIMPLEMENTED", connection.call(extra=[("grpc-encoding", "gzip")], body=framed(penguins(1), flag=1)),
       code=12, message="messages compressed with gzip are not read here: send them uncompressed")

# Broken messages: each INVALID_ARGUMENT with its reason.
expect("no message", connection.call(), code=3, message="the call has no message: a unary call takes exactly one")
expect("two messages", connection.call(body=framed(penguins(1)) * 2), code=3,
       message="the call sends more than one message: a unary call takes exactly one")
expect("a cut prefix", connection.call(body=b"\x00\x00\x00"), code=3, message="the call has no message: a unary call takes exactly one")
expect("a cut message", connection.call(body=b"\x00" + struct.pack(">I", 10) + b"abc"), code=3,
       message="the message is cut short: 3 of its 10 bytes came")
expect("the compressed flag without an encoding", connection.call(body=framed(penguins(1), flag=1)), code=3,
       message="the message is marked compressed, but the call names no encoding")
expect("bytes that are not the message", connection.call(body=framed(b"\xff\xff\xff\xff")), code=3,
       prefix="the message is not a valid inference.ModelInferRequest (")
expect("trailers end a call like END_STREAM does", (lambda s: (connection.h2.send_headers(s, [("x-end", "1")], end_stream=True),
                                                             connection.flush(), connection.answer(s))[2])(
    connection.open(path="/inference.GRPCInferenceService/ServerReady", body=framed(b""), end=False)), code=0)

# Over the transport's limit: answered at once, the stream reset (NO_ERROR), the connection kept.
stream = connection.open(body=b"", end=False)
connection.send(stream, framed(b"\x00" * (message_limit + (256 << 10)))[: message_limit + 64], end=False)
expect("a message over the limit is RESOURCE_EXHAUSTED", connection.answer(stream), code=8,
       message=f"the message is over the limit of {message_limit} bytes")
expect("... and the connection answers the next call", live(), code=0)
check("... and the stream was reset with NO_ERROR, so that the client stops sending", connection.streams[stream]["reset"] == 0,
      connection.streams[stream]["reset"])

# Larger than the stream's window (1 MiB) and the connection's: read whole, then the service's own limit.
per_row = len(penguins(1000)) / 1000
big = penguins(int(1.6 * (1 << 20) / per_row))
check("the big message is over 1 MiB and within the transport's limit", (1 << 20) < len(big) <= message_limit, len(big))
expect("a message larger than the windows is read whole (then over the body limit)", connection.call(body=framed(big)),
       code=8, message=f"the body is over the limit of {body_limit} bytes")
rows = int(0.75 * body_limit / per_row)
status, code, text, body = connection.call(body=framed(penguins(rows)))
response = pb.ModelInferResponse.FromString(body) if code == 0 else None
check(f"a {len(penguins(rows))}-byte message in many frames is answered", code == 0 and response.outputs[0].shape == [rows],
      f"{code}: {text}")

# Fifty calls interleaved on one connection, each message in two halves: every one answered with its own id.
streams = {}
for index in range(50):
    message = framed(penguins(1, id=f"call-{index}"))
    stream = connection.open(body=message[:7], end=False)
    streams[stream] = (index, message[7:])
for stream, (index, rest) in reversed(list(streams.items())):
    connection.send(stream, rest)
ids = {}
for stream, (index, _) in streams.items():
    status, code, text, body = connection.answer(stream)
    ids[index] = pb.ModelInferResponse.FromString(body).id if code == 0 else f"{code}: {text}"
check("fifty interleaved calls are answered, each with its id", ids == {i: f"call-{i}" for i in range(50)},
      [v for k, v in ids.items() if v != f"call-{k}"][:3])

# What one connection may hold unfinished: twice the message limit, all streams together.
piece = framed(b"\x00" * (message_limit - 16))[: message_limit - 1]
held = []
for _ in range(2):
    stream = connection.open(body=b"", end=False)
    connection.send(stream, piece, end=False)
    held.append(stream)
stream = connection.open(body=b"", end=False)
connection.send(stream, piece, end=False)
expect("a connection holding more than twice the limit unfinished is RESOURCE_EXHAUSTED", connection.answer(stream), code=8,
       message=f"this connection holds more unfinished messages than the server takes ({2 * message_limit} bytes): send fewer at once")
for stream in held:
    connection.h2.reset_stream(stream)
connection.flush()
expect("... and once the client resets the held streams, what they held is let go", connection.call(body=framed(big)),
       code=8, message=f"the body is over the limit of {body_limit} bytes")
expect("... and the connection still answers", live(), code=0)

if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("every transport check passed")
