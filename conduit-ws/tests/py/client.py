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
        # The client offered permessage-deflate; the server does not take it (yet).
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None


async def close_handshake():
    async with connect(URL + "/echo") as ws:
        await ws.close(4000, "bye")
        assert ws.close_code == 4000, ws.close_code


async def too_big():
    async with connect(URL + "/echo", max_size=None) as ws:
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
              foreign_origin, keep_alive]
    for check in checks:
        try:
            await asyncio.wait_for(check(), 20)
        except Exception as e:  # report which check failed, then fail
            print(f"FAILED {check.__name__}: {type(e).__name__}: {e}", flush=True)
            sys.exit(1)
        print(f"ok {check.__name__}", flush=True)


asyncio.run(main())
