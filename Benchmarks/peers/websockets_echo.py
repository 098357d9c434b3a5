"""Python `websockets` echo peer (asyncio server); prints {"port": N}."""
import asyncio
import json

from websockets.asyncio.server import serve


async def echo(socket):
    async for message in socket:
        await socket.send(message)


async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=1 << 24) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.Future()


asyncio.run(main())
