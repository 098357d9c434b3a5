// The JavaScript client in Node against a real `conduit serve` (run: scripts/test-js.sh,
// or node --experimental-websocket --test Tests/js/).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { startHost, vectorsPath, root, chaosSizes } from './support/host.mjs'
import { scenarios } from './support/scenarios.mjs'
import { launchChromium } from './support/chromium.mjs'
import { echoLoop } from './support/load.mjs'
import * as module from '../../Sources/ConduitCLI/Web/conduit.js'

const { Conduit } = module
Object.assign(globalThis, chaosSizes)
const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8'))
let host

before(async () => {
  host = await startHost()
  Object.assign(Conduit, { host: host.host, ipcPort: host.ipcPort, sharedKey: host.sharedKey })
})

after(async () => {
  for (const conduit of Conduit.pool) conduit.close()
  await host?.stop()
})

for (const [name, run] of Object.entries(scenarios({ module, vectors, prefix: 'node' }))) {
  test(name, { timeout: 60000 }, run)
}

// The host this repository ships acknowledges client positions with `conduit.ack` only, but
// SPEC §9 lets a host put `ack` on any message it sends.
test('resume: an ack on any message releases what it covers; pos and ack stay inside', () => {
  const state = new module.ResumeState()
  for (const n of [1, 2, 3]) state.number({ route: 'r', n })
  const message = (pairs) => module.decode(module.encode(pairs))
  const { deliver } = state.admit(message([['route', 'x'], ['pos', '1'], ['ack', '2']]))
  assert.deepEqual(deliver.headers, [['route', 'x']])
  assert.deepEqual(deliver.options, { route: 'x' })
  const greeting = message([['route', 'conduit.resume'], ['epoch', 'e'], ['resumed', '1'], ['replayed', '0'], ['lost', '0'], ['ack', '0']])
  assert.deepEqual(state.resend(greeting).map((kept) => kept.position), [3], 'what the ack covered is not sent again')
  assert.deepEqual(state.admit(message([['route', 'x'], ['pos', '1'], ['ack', '3']])), {}, 'a duplicate is dropped, its ack still taken')
  assert.deepEqual(state.resend(greeting), [])
})

test('resume: an ack or pos that is not a decimal position is taken as absent', () => {
  const state = new module.ResumeState()
  for (const n of [1, 2]) state.number({ route: 'r', n })
  const message = (pairs) => module.decode(module.encode(pairs))
  for (const ack of ['x', '-1', '1.5', '+2']) state.admit(message([['route', 'x'], ['pos', '1'], ['ack', ack]]))
  const greeting = message([['route', 'conduit.resume'], ['epoch', 'e'], ['resumed', '1'], ['replayed', '0'], ['lost', '0'], ['ack', '0']])
  assert.deepEqual(state.resend(greeting).map((kept) => kept.position), [1, 2], 'nothing was taken as acknowledged')
  assert.equal(state.received, 1)
  const { deliver } = state.admit(message([['route', 'x'], ['pos', 'y']]))
  assert.deepEqual(deliver.headers, [['route', 'x'], ['pos', 'y']], 'delivered as it came, without a position')
  assert.equal(state.received, 1, 'a position that is not one leaves the last received alone')
  assert.deepEqual(state.admit(message([['route', 'x'], ['pos', '1']])), {}, 'duplicates are still recognised')
})

// Each backoff wait once added an `abort` listener to the client's close signal and left it
// there when the wait ran out: Node warned of a leak from the 11th wait on.
test('reconnect: backoff waits leave no listener behind', { timeout: 60000 }, async () => {
  const warnings = []
  const onWarning = (warning) => warnings.push(`${warning.name}: ${warning.message}`)
  process.on('warning', onWarning)
  try {
    // Nothing listens on port 1 and there is no IPC port: every attempt fails at once.
    const conduit = new Conduit({ id: 'node-backoff', port: 1, ipcPort: 0, connect: false })
    await assert.rejects(conduit.reconnect({ retries: 13, timeout: 0.01 }), /can't connect/)
    await new Promise((resolve) => setImmediate(resolve)) // a warning is emitted on the next tick
    conduit.close()
    assert.deepEqual(warnings, [])
  } finally {
    process.off('warning', onWarning)
  }
})

// A host that takes the socket and closes it at once: each such socket counts as a failed
// attempt. The backoff started over with every socket that opened, so the client came back at
// the pace of the close round trip.
test('reconnect: sockets closed as soon as they open are retried with backoff', { timeout: 60000 }, async () => {
  const { createServer } = await import('node:net')
  const { createHash } = await import('node:crypto')
  let upgrades = 0
  const server = createServer((socket) => {
    socket.once('data', (head) => {
      const key = /Sec-WebSocket-Key: *(\S+)/i.exec(head.toString())?.[1] ?? ''
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
      upgrades++
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n` +
        String.fromCharCode(0x88, 0x02, 0x03, 0xF3), 'latin1')
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-dropped', port: server.address().port, ipcPort: 0, connect: false, reconnect: { timeout: 200 } })
  conduit.reconnect(conduit.reconnectOptions).catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 6000))
  conduit.close()
  server.close()
  // 200 ms doubling, each wait at least half: about 7 sockets in 6 s.
  assert.ok(upgrades >= 2 && upgrades <= 10, `${upgrades} sockets in 6 s`)
})

// A peer that takes the connection and never answers the upgrade: the attempt had no time
// limit, so connect() and every reconnect waited as long as the runtime does (about 300 s).
test('connect: an attempt that gets no answer fails within reconnect.attemptTimeout', { timeout: 20000 }, async () => {
  const { createServer } = await import('node:net')
  const held = []
  const server = createServer((socket) => { held.push(socket) })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-unanswered', port: server.address().port, ipcPort: 0, connect: false, reconnect: { attemptTimeout: 300 } })
  const started = Date.now()
  await assert.rejects(conduit.connect(), /no answer/)
  assert.ok(Date.now() - started < 5000, `rejected after ${Date.now() - started} ms`)
  conduit.close()
  for (const socket of held) socket.destroy()
  server.close()
})

// The IPC listener's own refusals (a wrong key, the budget, no place) carry neither `error`
// nor `token`: request() waited out its whole timeout while the refusal went to the receive
// handler as an ordinary message.
test('request: a refusal by the IPC listener rejects at once and is not a message', { timeout: 20000 }, async () => {
  const { createServer } = await import('node:http')
  const server = createServer((request, response) => {
    response.writeHead(403, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ err: { type: 'ForbiddenError', message: 'wrong key' } }))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-refused', ipcPort: server.address().port, connect: false, reconnect: { retries: 0 } })
  const received = []
  conduit.receive((error, message) => { if (!error) received.push(message) })
  conduit.addEventListener('error', () => {})
  const started = Date.now()
  await assert.rejects(conduit.request('echo', { timeout: 10000 }), (error) => error.type === 'HTTP403' && /wrong key/.test(error.message))
  assert.ok(Date.now() - started < 5000, `rejected after ${Date.now() - started} ms`)
  assert.deepEqual(received, [], 'the refusal reached the receive handler')
  conduit.close()
  server.close()
})

// Reconnecting by itself, the client gave up without a word, one attempt short of `retries`.
test('reconnect: retries count after the first attempt, and giving up is an error event', { timeout: 20000 }, async () => {
  const { createServer } = await import('node:net')
  let attempts = 0
  const server = createServer((socket) => { attempts++; socket.destroy() })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-giving-up', port: server.address().port, ipcPort: 0, connect: false, reconnect: { retries: 2, timeout: 50 } })
  const errors = []
  conduit.addEventListener('error', (event) => errors.push(event.error ?? event.detail?.error))
  await assert.rejects(conduit.reconnect(conduit.reconnectOptions))
  assert.equal(attempts, 3, 'the first attempt and two retries')
  assert.ok(errors.some((error) => /gave up after 3 attempts/.test(String(error?.message))), `errors: ${errors.map(String)}`)
  conduit.close()
  server.close()
})

// A message whose parts pass the joining limit is dropped whole, with an error: its later
// parts, up to its last, are skipped. There was no limit (a host sending parts without end
// grew the page's memory without bound).
test('parts: a message over the joining limit is dropped whole, not delivered as its tail', () => {
  const joiner = new module.PartJoiner(130)
  const part = (byte, more) => module.decode(module.encode(more ? { route: 'big', more: true } : { route: 'big' }, new Uint8Array(60).fill(byte)))
  assert.equal(joiner.add(part(1, true)), undefined)
  assert.equal(joiner.add(part(2, true)), undefined)
  assert.throws(() => joiner.add(part(3, true)), (error) => error.code === 'limit')
  assert.equal(joiner.add(part(4, false)), undefined, 'the last part of the dropped message')
  const small = joiner.add(module.decode(module.encode({ route: 'small' }, new TextEncoder().encode('ok'))))
  assert.equal(small.options.route, 'small')
})

// A fallback stream whose frame announces a length no message has ends with an error at
// once: it was buffered toward 4 GB, re-copied on every read, and ended without a word.
test('fallback: a frame length no message has is an error event at once', { timeout: 60000 }, async () => {
  const { createServer } = await import('node:http')
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'application/octet-stream' })
    response.write(new Uint8Array([0xFF, 0xFF, 0xFF, 0xFF]))
    response.end(new Uint8Array(1 << 20))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-broken-stream', port: 1, ipcPort: server.address().port, connect: false })
  const errors = []
  conduit.addEventListener('error', (event) => errors.push(event.error))
  await conduit.startFallback()
  conduit.close()
  server.close()
  assert.equal(errors.length, 1)
  assert.equal(errors[0].code, 'limit', String(errors[0]))
})

// The events stream is read until the socket is back, as in Swift: with `retries: 0` one
// refusal (503: the listener's streams were all taken) ended it for good, with an error
// event, and the id's pushes waited on the host, unread.
test('fallback: a refused events stream is asked again until the socket is back', { timeout: 60000 }, async () => {
  const { createServer } = await import('node:http')
  let asked = 0
  const server = createServer((request, response) => {
    asked++
    if (asked === 1) return response.writeHead(503).end()
    const message = module.encode({ route: 'news' }, new TextEncoder().encode('after a refusal'))
    const frame = new Uint8Array(4 + message.byteLength)
    new DataView(frame.buffer).setUint32(0, message.byteLength)
    frame.set(message, 4)
    response.writeHead(200, { 'content-type': 'application/octet-stream' })
    response.write(frame)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-refused-stream', port: 1, ipcPort: server.address().port, connect: false, reconnect: { retries: 0 } })
  const outcome = new Promise((resolve) => {
    conduit.receive((error, message) => resolve({ error, message }))
    conduit.addEventListener('error', (event) => resolve({ error: event.error }))
  })
  conduit.startFallback()
  const { error, message } = await outcome
  conduit.close()
  server.closeAllConnections()
  server.close()
  assert.ok(!error, String(error))
  assert.equal(new TextDecoder().decode(message.payload), 'after a refusal')
})

// close() while an attempt asked IPC for the port: the socket was opened all the same, and
// closed at once, replacing one of the same id that another client had opened meanwhile.
test('connect: a client closed while it asks for the port opens no socket', { timeout: 60000 }, async () => {
  const { createServer, connect } = await import('node:net')
  let asked
  const askedForThePort = new Promise((resolve) => { asked = resolve })
  const slowIPC = createServer((socket) => {
    asked()
    setTimeout(() => socket.pipe(connect(host.ipcPort, '127.0.0.1')).pipe(socket), 500)
  })
  await new Promise((resolve) => slowIPC.listen(0, '127.0.0.1', resolve))
  const closing = new Conduit({ id: 'node-closed-early', ipcPort: slowIPC.address().port, connect: false })
  const attempt = closing.connect()
  await askedForThePort
  closing.close()
  const successor = new Conduit({ id: 'node-closed-early', connect: false })
  await successor.connect()
  await assert.rejects(attempt, (error) => error.code === 'closed', 'the attempt ends as closed')
  slowIPC.close()
  const replaced = new Promise((resolve) => successor.addEventListener('close', (event) => resolve(`closed: ${event.reason}`)))
  const echoed = new Promise((resolve) => successor.receive((error, message) => resolve(error ? String(error) : message.options.token)))
  successor.send({ route: 'echo', token: 'still-open' })
  assert.equal(await Promise.race([replaced, echoed]), 'still-open', 'the new client of the id kept its socket')
  successor.close()
})

test('the host serves /conduit.js and the status page, with the key only', { timeout: 60000 }, async () => {
  const served = await fetch(host.url(`/conduit.js?key=${host.sharedKey}`))
  assert.equal(served.status, 200)
  assert.match(served.headers.get('content-type'), /^text\/javascript/)
  assert.equal(await served.text(), readFileSync(`${root}Sources/ConduitCLI/Web/conduit.js`, 'utf8'))
  const page = await fetch(host.url(`/?key=${host.sharedKey}`))
  assert.equal(page.status, 200)
  assert.match(await page.text(), /<title>Conduit status<\/title>/)
  assert.equal((await fetch(host.url('/conduit.js'))).status, 401)
  assert.equal((await fetch(host.url('/?key=wrong-key-123'))).status, 403)
})

test('the status page charts requests/s and p50/p99 latency per route, drawn in the page', { timeout: 90000 }, async () => {
  const chromium = await launchChromium()
  let running = true
  const load = echoLoop('chart-load', 256, () => running)
  try {
    const page = await chromium.open(host.url(`/?key=${host.sharedKey}&id=status-charts`))
    let summary
    for (let attempt = 0; attempt < 60; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      summary = await page.evaluate(`(() => {
        const history = window.conduitCharts.history
        const echo = history.slice(-3).map((point) => point.routes.get('echo')).filter(Boolean)
        const canvas = document.getElementById('chartRequests')
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
        let line = 0
        for (let i = 0; i < pixels.length; i += 4) if (pixels[i + 3] > 0 && pixels[i + 2] > 150 && pixels[i] < 120) line++
        return { points: history.length, perSecond: Math.max(0, ...echo.map((e) => e.perSecond)),
          places: document.getElementById('places').textContent,
          p50: echo.map((e) => e.p50).filter((v) => v !== null), p99: echo.map((e) => e.p99).filter((v) => v !== null), line }
      })()`)
      if (summary.points >= 4 && summary.perSecond > 0 && summary.p50.length > 0 && summary.line > 20) break
    }
    assert.ok(summary.points >= 4, `points: ${JSON.stringify(summary)}`)
    assert.ok(summary.perSecond > 10, `echo requests/s: ${JSON.stringify(summary)}`)
    assert.ok(summary.p50.length > 0 && summary.p50.every((v, i) => v > 0 && summary.p99[i] >= v), `p50/p99: ${JSON.stringify(summary)}`)
    assert.ok(summary.line > 20, `the requests chart has a drawn line: ${JSON.stringify(summary)}`)
    assert.match(summary.places, /^\S+ of 65\D?536 \(\S+, \S+\)$/, 'ids held, of maxClients (evicted away, refused)')
  } finally {
    running = false
    await load
    await chromium.close()
  }
})
