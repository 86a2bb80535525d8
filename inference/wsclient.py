"""A minimal asyncio websocket client (RFC 6455) for the benchmark: enough to stream frames to /ws/webcam/."""
import asyncio
import base64
import os
import struct


class WebSocketClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str, headers: dict | None = None) -> "WebSocketClient":
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Origin: http://{host}:{port}",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status = await reader.readline()
        if b" 101 " not in status:
            raise ConnectionError(f"websocket upgrade refused: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(reader, writer)

    async def send(self, payload: bytes | str):
        opcode = 0x1 if isinstance(payload, str) else 0x2
        data = payload.encode() if isinstance(payload, str) else payload
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)
        # Clients must mask every frame; XOR through a big integer is fast enough for 50 KB frames.
        n = len(data)
        repeated = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big") if n else b""
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def recv(self) -> bytes | str:
        while True:
            first, second = await self.reader.readexactly(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            data = await self.reader.readexactly(length)
            if opcode == 0x1:
                return data.decode()
            if opcode == 0x2:
                return data
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the server")

    async def close(self):
        self.writer.write(bytes([0x88, 0x80]) + os.urandom(4))
        try:
            await self.writer.drain()
        finally:
            self.writer.close()
