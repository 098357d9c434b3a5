"""`picows` echo peer (Cython WebSocket library on asyncio, PyPI); prints {"port": N}.

Echoes each data frame as it arrives (the load tool sends unfragmented messages), the way
picows' own benchmark server does; control frames are answered by the library."""
import asyncio
import json

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame):
        if frame.msg_type in (WSMsgType.BINARY, WSMsgType.TEXT):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def main():
    server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", 0, max_frame_size=1 << 24)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    await server.serve_forever()


asyncio.run(main())
