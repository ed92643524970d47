"""Python's `websockets` against conduit-ws (run by tests/python.rs).

    client.py HOST:PORT MAX_FRAME MAX_MESSAGE

Exits 0 when every check passed; prints the failing check and exits 1 otherwise.
"""

import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

ADDR, MAX_FRAME, MAX_MESSAGE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
URL = f"ws://{ADDR}"


async def echo_sizes():
    async with connect(URL + "/echo", max_size=None) as ws:
        for n in [0, 1, 125, 126, 127, 65535, 65536, MAX_FRAME]:
            text = "".join(chr(ord("a") + i % 26) for i in range(n))
            await ws.send(text)
            got = await ws.recv()
            assert got == text, f"text of {n} bytes came back as {len(got)} characters"
            data = bytes(i * 7 % 256 for i in range(n))
            await ws.send(data)
            got = await ws.recv()
            assert got == data, f"binary of {n} bytes came back as {len(got)} bytes"
        await ws.send("héllo ✓ 🦀")
        assert await ws.recv() == "héllo ✓ 🦀"


async def fragments():
    async with connect(URL + "/echo", max_size=None) as ws:
        # An iterable is sent as one fragmented message.
        await ws.send(["hel", "lo ", "wörld"])
        assert await ws.recv() == "hello wörld"
        piece = b"\xa5" * (MAX_MESSAGE // 4)
        await ws.send([piece, piece, piece, piece])
        got = await ws.recv()
        assert got == piece * 4, f"fragmented binary came back as {len(got)} bytes"


async def ping_pong():
    async with connect(URL + "/echo") as ws:
        waiter = await ws.ping(b"py-ping")
        await asyncio.wait_for(waiter, 5)


async def subprotocol():
    async with connect(URL + "/echo", subprotocols=["other", "chat"]) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        # websockets offers permessage-deflate by default; the server keeps no context.
        assert ws.response.headers.get("Sec-WebSocket-Extensions") == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "client_max_window_bits=15"
        ), ws.response.headers.get("Sec-WebSocket-Extensions")


async def deflate_round_trip(path, expected):
    async with connect(URL + path, max_size=None) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") == expected, \
            ws.response.headers.get("Sec-WebSocket-Extensions")
        for i in range(20):
            text = f"message {i}: " + "the quick brown fox jumps over the lazy dog " * (i * 10)
            await ws.send(text)
            assert await ws.recv() == text, f"compressed text {i}"
            data = bytes(range(256)) * i + b"\x00" * (i * 500)
            await ws.send(data)
            assert await ws.recv() == data, f"compressed binary {i}"
        # A fragmented compressed message.
        await ws.send(["compressed " * 50, "fragments " * 50])
        assert await ws.recv() == "compressed " * 50 + "fragments " * 50


async def deflate_without_context_takeover():
    await deflate_round_trip("/echo", (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "client_max_window_bits=15"))


async def deflate_with_context_takeover():
    await deflate_round_trip("/echo-takeover", "permessage-deflate; client_max_window_bits=15")


async def no_deflate_when_not_offered():
    async with connect(URL + "/echo", compression=None) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send("plain " * 100)
        assert await ws.recv() == "plain " * 100


async def compression_bomb():
    # 4x the message limit of zeros compresses to a few KB, well under the frame limit: the
    # server must refuse it with 1009 while inflating.
    async with connect(URL + "/echo", max_size=None) as ws:
        await ws.send(b"\x00" * (MAX_MESSAGE * 4))
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosedError as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e
        else:
            raise AssertionError("a compression bomb was inflated")


async def close_handshake():
    async with connect(URL + "/echo") as ws:
        await ws.close(4000, "bye")
        assert ws.close_code == 4000, ws.close_code


async def too_big():
    # Uncompressed, so the frame on the wire is over the frame limit.
    async with connect(URL + "/echo", max_size=None, compression=None) as ws:
        await ws.send(b"x" * (MAX_FRAME + 1))
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosedError as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e
        else:
            raise AssertionError("a message over the limit was accepted")


async def foreign_origin():
    try:
        async with connect(URL + "/origin", origin="https://evil.example"):
            raise AssertionError("a foreign origin was accepted")
    except InvalidStatus as e:
        assert e.response.status_code == 403, e.response.status_code
    async with connect(URL + "/origin", origin="https://app.example") as ws:
        await ws.send("ok")
        assert await ws.recv() == "ok"


async def keep_alive():
    # /idle pings every 200 ms and closes after 600 ms of silence; websockets answers the
    # pings while it reads, so the socket stays open.
    async with connect(URL + "/idle", ping_interval=None) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 1.5)
            raise AssertionError("unexpected message")
        except TimeoutError:
            pass
        await ws.send("alive")
        assert await ws.recv() == "alive"


async def main():
    checks = [echo_sizes, fragments, ping_pong, subprotocol, close_handshake, too_big,
              foreign_origin, keep_alive, deflate_without_context_takeover,
              deflate_with_context_takeover, no_deflate_when_not_offered, compression_bomb]
    for check in checks:
        try:
            await asyncio.wait_for(check(), 20)
        except Exception as e:  # report which check failed, then fail
            print(f"FAILED {check.__name__}: {type(e).__name__}: {e}", flush=True)
            sys.exit(1)
        print(f"ok {check.__name__}", flush=True)


asyncio.run(main())
