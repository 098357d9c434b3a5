// A scripted stand-in for the host, for what the real one never does, or not on cue (a frame
// that does not decode, a greeting held back): a WebSocket listener whose sockets the test
// drives, and an IPC listener that answers `internal.conduit.status` with that listener's
// port and hands `internal.conduit.events` to the test.
import { createServer as createNetServer } from 'node:net'
import { createServer as createHTTPServer } from 'node:http'
import { createHash } from 'node:crypto'
import { decode } from '../../../Sources/ConduitCLI/Web/conduit.js'

/** One WebSocket frame from the server (never masked): binary by default. */
function frame (payload, opcode = 2) {
  const length = payload.byteLength
  let head
  if (length < 126) {
    head = Buffer.from([0x80 | opcode, length])
  } else if (length < 65536) {
    head = Buffer.from([0x80 | opcode, 126, 0, 0])
    head.writeUInt16BE(length, 2)
  } else {
    head = Buffer.from([0x80 | opcode, 127, 0, 0, 0, 0, 0, 0, 0, 0])
    head.writeBigUInt64BE(BigInt(length), 2)
  }
  return Buffer.concat([head, Buffer.from(payload)])
}

/** An events stream frame (SPEC §6): a uint32 BE length, then the encoded message. */
export function streamFrame (message) {
  const out = Buffer.alloc(4 + message.byteLength)
  out.writeUInt32BE(message.byteLength)
  out.set(message, 4)
  return out
}

/**
 * `{ port, ipcPort, accept, nextSocket(), stop() }`. `accept = false` refuses upgrades (503).
 * A socket: `{ url, send(encoded), sendText(text), pauseReading(), resumeReading(), close(code, reason),
 * nextMessage() }` (the client's
 * messages, decoded). `onEvents(url, response)` answers each events stream request.
 */
export async function startFakeHost ({ onEvents = (url, response) => response.writeHead(404).end() } = {}) {
  const arrived = []
  const waiting = []
  const connections = new Set()
  const fake = { accept: true }
  const sockets = createNetServer((connection) => {
    connections.add(connection)
    connection.on('close', () => connections.delete(connection))
    connection.on('error', () => {})
    let buffered = Buffer.alloc(0)
    let socket = null
    connection.on('data', (data) => {
      buffered = Buffer.concat([buffered, data])
      if (!socket) {
        const end = buffered.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buffered.subarray(0, end).toString('latin1')
        buffered = buffered.subarray(end + 4)
        if (!fake.accept) return connection.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n')
        const key = /Sec-WebSocket-Key: *(\S+)/i.exec(head)?.[1] ?? ''
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
        connection.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
        socket = fakeSocket(connection, new URL(head.split(' ')[1], 'ws://fake'))
        const next = waiting.shift()
        next ? next(socket) : arrived.push(socket)
      }
      buffered = socket.read(buffered)
    })
  })
  const ipc = createHTTPServer((request, response) => {
    const url = new URL(request.url, 'http://fake')
    if (url.pathname === '/internal.conduit.events') return onEvents(url, response)
    if (url.pathname !== '/internal.conduit.status') return response.writeHead(404).end()
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ data: { port: sockets.address().port, isActive: true } }))
  })
  await new Promise((resolve) => sockets.listen(0, '127.0.0.1', resolve))
  await new Promise((resolve) => ipc.listen(0, '127.0.0.1', resolve))
  return Object.assign(fake, {
    port: sockets.address().port,
    ipcPort: ipc.address().port,
    nextSocket: () => arrived.length ? Promise.resolve(arrived.shift()) : new Promise((resolve) => waiting.push(resolve)),
    stop () {
      for (const connection of connections) connection.destroy()
      sockets.close()
      ipc.closeAllConnections()
      ipc.close()
    }
  })
}

function fakeSocket (connection, url) {
  const messages = []
  const waiting = []
  return {
    url,
    send (encoded) { connection.write(frame(encoded)) },
    /** A text frame (which no Conduit host sends). */
    sendText (text) { connection.write(frame(Buffer.from(text), 1)) },
    /** Stops reading the client (its bytes wait in the kernel's buffers, then in the client). */
    pauseReading () { connection.pause() },
    resumeReading () { connection.resume() },
    close (code = 1000, reason = '') {
      const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
      payload.writeUInt16BE(code)
      payload.write(reason, 2)
      connection.end(frame(payload, 8))
    },
    nextMessage: () => messages.length ? Promise.resolve(messages.shift()) : new Promise((resolve) => waiting.push(resolve)),
    /** Takes the client's whole frames (masked) off `buffered`; returns what is left. */
    read (buffered) {
      for (;;) {
        if (buffered.length < 2) return buffered
        const size = buffered[1] & 0x7f
        const offset = size === 126 ? 4 : size === 127 ? 10 : 2
        if (buffered.length < offset) return buffered
        const length = size === 126 ? buffered.readUInt16BE(2) : size === 127 ? Number(buffered.readBigUInt64BE(2)) : size
        if (buffered.length < offset + 4 + length) return buffered
        const mask = buffered.subarray(offset, offset + 4)
        const payload = Buffer.from(buffered.subarray(offset + 4, offset + 4 + length))
        for (let index = 0; index < length; index++) payload[index] ^= mask[index & 3]
        const opcode = buffered[0] & 0x0f
        buffered = buffered.subarray(offset + 4 + length)
        // The client's close is answered, so that its socket closes (and it reconnects); a ping
        // needs no answer here.
        if (opcode === 8) connection.end(frame(payload, 8))
        if (opcode !== 2) continue
        const message = decode(new Uint8Array(payload))
        const next = waiting.shift()
        next ? next(message) : messages.push(message)
      }
    }
  }
}
