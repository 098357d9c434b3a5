// The JavaScript client in Node against a real `conduit serve` (run: scripts/test-js.sh,
// or node --experimental-websocket --test Tests/js/).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer as createHTTPServer } from 'node:http'
import { startHost, vectorsPath, root, chaosSizes } from './support/host.mjs'
import { startFakeHost, streamFrame } from './support/fake-host.mjs'
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
  test(name, { timeout: 60000 * chaosSizes.CONDUIT_CHAOS_SCALE }, run)
}

// The host this repository ships acknowledges client positions with `conduit.ack` only, but
// SPEC §9 lets a host put `ack` on any message it sends.
test('resume: an ack on any message releases what it covers; pos and ack stay inside', () => {
  const state = new module.ResumeState()
  // Written on a socket: an acknowledgement covers only what went out.
  for (const n of [1, 2, 3]) state.markSent(state.number({ route: 'r', n }))
  const message = (pairs) => module.decode(module.encode(pairs))
  const { deliver } = state.admit(message([['route', 'x'], ['pos', '1'], ['ack', '2']]))
  assert.deepEqual(deliver.headers, [['route', 'x']])
  assert.deepEqual(deliver.options, { route: 'x' })
  const greeting = message([['route', 'conduit.resume'], ['epoch', 'e'], ['resumed', '1'], ['replayed', '0'], ['lost', '0'], ['ack', '0']])
  assert.deepEqual(state.resend(greeting).map((kept) => kept.position), [3], 'what the ack covered is not sent again')
  assert.deepEqual(state.admit(message([['route', 'x'], ['pos', '1'], ['ack', '3']])), { duplicate: true }, 'a duplicate is dropped, its ack still taken')
  assert.deepEqual(state.resend(greeting), [])
})

test('resume: an ack or pos that is not a decimal position is taken as absent', () => {
  const state = new module.ResumeState()
  for (const n of [1, 2]) state.markSent(state.number({ route: 'r', n }))
  const message = (pairs) => module.decode(module.encode(pairs))
  for (const ack of ['x', '-1', '1.5', '+2']) state.admit(message([['route', 'x'], ['pos', '1'], ['ack', ack]]))
  const greeting = message([['route', 'conduit.resume'], ['epoch', 'e'], ['resumed', '1'], ['replayed', '0'], ['lost', '0'], ['ack', '0']])
  assert.deepEqual(state.resend(greeting).map((kept) => kept.position), [1, 2], 'nothing was taken as acknowledged')
  assert.equal(state.received, 1)
  const { deliver } = state.admit(message([['route', 'x'], ['pos', 'y']]))
  assert.deepEqual(deliver.headers, [['route', 'x'], ['pos', 'y']], 'delivered as it came, without a position')
  assert.equal(state.received, 1, 'a position that is not one leaves the last received alone')
  assert.deepEqual(state.admit(message([['route', 'x'], ['pos', '1']])), { duplicate: true }, 'duplicates are still recognised')
})

// Resume sees each part before the joiner, which may then drop the message: the last part
// receives it (delivered or not), an earlier one nothing (a reconnect then asks for all of it).
test('resume: a split message is received at its last part, and a copy is one duplicate', () => {
  const state = new module.ResumeState()
  const part = (position, more) => module.decode(module.encode([['route', 'x'], ...(more ? [['more', 'true']] : []), ['pos', String(position)]]))
  assert.deepEqual(state.admit(part(1, true)).deliver.headers, [['route', 'x'], ['more', 'true']])
  assert.equal(state.received, 0, 'a part before the last')
  assert.ok(state.admit(part(2, false)).deliver)
  assert.equal(state.received, 2)
  assert.equal(state.ackDue(), 'later')
  assert.deepEqual([state.admit(part(1, true)), state.admit(part(2, false))], [{ duplicate: true }, { duplicate: true }])
  assert.equal(state.duplicates, 1)
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
  // Its own limit named, not the default's (10 s), nor none (the test's 20 s); no clock here,
  // which a loaded machine can outlast.
  await assert.rejects(conduit.connect(), /no answer .* within 300 ms/)
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
  // The refusal itself, not the timeout's error (which the old code ended with); no clock.
  await assert.rejects(conduit.request('echo', { timeout: 10000 }), (error) => error.type === 'HTTP403' && /wrong key/.test(error.message))
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

// Parts held keep only their payloads: each kept as it came (a view of its frame) held its
// headers too, uncounted, so parts with large headers and no payload grew memory without end.
test('parts: what is held while parts come is their payloads, not their frames', async () => {
  // Measured in a process of its own: this one's array buffers move with the other tests'
  // sockets (a full run once saw 7 MB more here with nothing held).
  const { execFileSync } = await import('node:child_process')
  const script = `
    import * as module from ${JSON.stringify(new URL('../../Sources/ConduitCLI/Web/conduit.js', import.meta.url).href)}
    const joiner = new module.PartJoiner()
    const padding = 'x'.repeat(4000)
    gc()
    const before = process.memoryUsage().arrayBuffers
    for (let n = 0; n < 10000; n++) {
      if (joiner.add(module.decode(module.encode({ route: 'parts', more: true, padding }, new Uint8Array([n & 0xFF])))) !== undefined) throw new Error('a part was delivered alone')
    }
    gc()
    const held = process.memoryUsage().arrayBuffers - before
    const whole = joiner.add(module.decode(module.encode({ route: 'parts' }, new Uint8Array([7]))))
    console.log(JSON.stringify({ held, length: whole.payload.byteLength, ends: [...whole.payload.subarray(0, 3), whole.payload[10000]] }))
  `
  const result = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' }))
  assert.ok(result.held < 4_000_000, `10,000 one-byte parts hold ${result.held} bytes`)
  assert.equal(result.length, 10001)
  assert.deepEqual(result.ends, [0, 1, 2, 7])
})

// A response from the IPC port was read whole, however long: whatever answered there (another
// program, after the host went) could make the page buffer without end.
test('ipc: a response past 64 MiB is a limit error at once', { timeout: 60000 }, async () => {
  const { createServer } = await import('node:http')
  const chunk = new Uint8Array(1 << 16).fill(32)
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    const pump = () => { while (!response.destroyed && response.write(chunk)); }
    response.on('drain', pump)
    pump()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  await assert.rejects(Conduit.status({ ipcPort: server.address().port }), (error) => error.code === 'limit')
  server.closeAllConnections()
  server.close()
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

// A client replaced by a newer one of its id took the id back with its next sendOrFallback
// (over IPC, it started a reconnect), and the two traded the id for ever. It stays down now
// until connect() or reconnect().
test('reconnect: a replaced client\'s sends do not take its id back', { timeout: 60000 }, async () => {
  const first = new Conduit({ id: 'node-replaced-sends', connect: false, reconnect: { timeout: 50 } })
  await first.connect()
  const firstClosed = new Promise((resolve) => first.addEventListener('close', (event) => resolve(event.reason)))
  const second = new Conduit({ id: 'node-replaced-sends', connect: false })
  await second.connect()
  assert.equal(await firstClosed, 'replaced')
  let secondClosed = null
  second.addEventListener('close', (event) => { secondClosed = event.reason })
  assert.equal(await first.sendOrFallback({ route: 'echo', token: 'over-ipc' }), 'ipc')
  await new Promise((resolve) => setTimeout(resolve, 2000)) // past the reconnect it started (50 ms)
  assert.equal(secondClosed, null, 'the newer client kept its socket')
  assert.ok(second.isOpen && !first.isOpen)
  await first.connect()
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(secondClosed, 'replaced', 'connect() takes the id back on purpose')
  first.close()
  second.close()
})

// The client knew it was replaced only after its close event: a send from a close listener
// went over IPC and started a reconnect, which took the id back from the newer socket.
test('reconnect: a send from a replaced client\'s close listener does not take its id back', { timeout: 60000 }, async () => {
  const first = new Conduit({ id: 'node-replaced-listener', connect: false, reconnect: { timeout: 50 } })
  await first.connect()
  const sentFromListener = new Promise((resolve) => first.addEventListener('close', () => {
    resolve(first.sendOrFallback({ route: 'echo', token: 'from-listener' }))
  }))
  const second = new Conduit({ id: 'node-replaced-listener', connect: false })
  await second.connect()
  assert.equal(await sentFromListener, 'ipc')
  let secondClosed = null
  second.addEventListener('close', (event) => { secondClosed = event.reason })
  await new Promise((resolve) => setTimeout(resolve, 2000)) // past a reconnect it would start (50 ms)
  assert.equal(secondClosed, null, 'the newer client kept its socket')
  assert.ok(second.isOpen && !first.isOpen)
  first.close()
  second.close()
})

// A socket replaced by a newer one of its id did not fail, yet it counted as one that closed
// soon after opening: the reconnect that takes the id back first waited as after a failed
// attempt (half to all of the first delay: 20 to 40 s here).
test('reconnect: taking the id back after a replacement waits for no backoff', { timeout: 60000 }, async () => {
  const first = new Conduit({ id: 'node-take-back', connect: false })
  await first.connect()
  const firstClosed = new Promise((resolve) => first.addEventListener('close', (event) => resolve(event.reason)))
  const second = new Conduit({ id: 'node-take-back', connect: false })
  await second.connect()
  assert.equal(await firstClosed, 'replaced')
  const started = Date.now()
  await first.reconnect({ timeout: 40000 })
  const took = Date.now() - started
  assert.ok(took < 15000, `taking the id back took ${took} ms`)
  assert.ok(first.isOpen)
  first.close()
  second.close()
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
      if (summary.points >= 4 && summary.perSecond > 10 && summary.p50.length > 0 && summary.line > 20) break
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

// A request too large for the host's chunk queue: its chunks carried only `more=true`, so the
// host's refusal had no token (it went to the receive handler), the parts after the refused
// one made a request of their own, and request() resolved with the echo of that cut-off tail.
test('request: a payload the chunk queue refuses rejects, and the reply to its tail is swallowed', { timeout: 60000 }, async () => {
  const small = await startHost({ env: { CONDUIT_CHUNK_QUEUE_BYTES: '200000' } })
  const conduit = new Conduit({ id: 'node-chunk-queue', host: small.host, port: small.port, ipcPort: small.ipcPort, sharedKey: small.sharedKey, connect: false })
  try {
    await conduit.connect()
    const received = []
    conduit.receive((error, message) => received.push(error ? String(error) : message.options))
    await assert.rejects(conduit.request('echo', { payload: new Uint8Array(300000) }),
      (error) => error.type === 'PayloadTooLargeError', 'the refusal answers the request')
    // One connection, answered in order: the tail's reply (if any) comes before this one's.
    const after = await conduit.request('echo', { payload: 'after' })
    assert.equal(new TextDecoder().decode(after.payload), 'after')
    assert.deepEqual(received, [], 'nothing of the refused request reached the receive handler')
  } finally {
    conduit.close()
    await small.stop()
  }
})

/** Resolves on `conduit`'s next event of `type`. */
const nextEvent = (conduit, type) => new Promise((resolve) => conduit.addEventListener(type, resolve, { once: true }))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves once `condition()` holds; fails past `timeout` ms. */
async function until (condition, timeout = 30000) {
  const deadline = Date.now() + timeout
  while (!condition()) {
    assert.ok(Date.now() < deadline, 'timed out')
    await sleep(5)
  }
}

/** A fake host and a client of it (without resume), connected: its socket on the host's side. */
async function fakeAndConnectedClient (id) {
  const fake = await startFakeHost()
  const conduit = new Conduit({ id, ipcPort: fake.ipcPort, connect: false, reconnect: { timeout: 10 } })
  conduit.addEventListener('error', () => {})
  const first = fake.nextSocket()
  await conduit.connect()
  return { fake, conduit, socket: await first }
}

/** A fake host and a resuming client of it, not connected yet, that counts what it delivers. */
async function fakeAndResumingClient (id) {
  const fake = await startFakeHost()
  const conduit = new Conduit({ id, ipcPort: fake.ipcPort, resume: true, connect: false, reconnect: { timeout: 10 } })
  conduit.addEventListener('error', () => {})
  const counts = { delivered: 0 }
  conduit.receive(() => { counts.delivered++ })
  return { fake, conduit, counts }
}

/** A `conduit.resume` greeting of epoch `e1` (SPEC §9), encoded. */
const greetingOfE1 = ({ resumed = 0, ack = 0, reset = false } = {}) => module.encode([['route', 'conduit.resume'], ['epoch', 'e1'],
  ['resumed', String(resumed)], ['replayed', '0'], ['lost', '0'], ['ack', String(ack)], ...(reset ? [['reset', 'true']] : [])])

/** Connects `conduit` to `fake`; its socket, once a reset greeting of epoch `e1` was sent on it. */
async function connectGreeted (fake, conduit) {
  const first = fake.nextSocket()
  await conduit.connect()
  const socket = await first
  socket.send(greetingOfE1({ reset: true }))
  return socket
}

// Without resume a socket's messages wait behind the fallback stream until it ends, which a
// host does when the socket takes over. One that never ended it had them held for ever: the
// page's memory grew and none reached the application. Past 8 MiB the stream is given up.
test('fallback: a stream that does not end once the socket is back is given up past 8 MiB held', { timeout: 60000 }, async () => {
  const fake = await startFakeHost({
    onEvents (url, response) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      response.write(streamFrame(module.encode({ route: 'push', n: 0 })))
    }
  })
  const conduit = new Conduit({ id: 'node-held-bound', ipcPort: fake.ipcPort, connect: false, reconnect: { timeout: 50 } })
  const received = []
  let onReceived = () => {}
  conduit.receive((error, message) => {
    if (!error) received.push(message.options.n)
    onReceived()
  })
  const errors = []
  conduit.addEventListener('error', (event) => errors.push(event.error ?? event.detail?.error))
  try {
    const firstSocket = fake.nextSocket()
    await conduit.connect()
    fake.accept = false
    const closed = nextEvent(conduit, 'close')
    ;(await firstSocket).close(1001, 'going away')
    await closed
    const streamed = new Promise((resolve) => { onReceived = () => received.includes(0) && resolve() })
    conduit.startFallback()
    await streamed
    fake.accept = true
    const secondSocket = fake.nextSocket()
    await nextEvent(conduit, 'reopen')
    const all = new Promise((resolve) => { onReceived = () => received.length === 161 && resolve() })
    const payload = new Uint8Array(60000)
    for (let n = 1; n <= 160; n++) (await secondSocket).send(module.encode({ route: 'push', n }, payload))
    await all
    assert.deepEqual(received, Array.from({ length: 161 }, (_, n) => n))
    assert.ok(errors.some((error) => error?.code === 'limit' && /did not end/.test(error.message)), `errors: ${errors.map(String)}`)
  } finally {
    conduit.close()
    await fake.stop()
  }
})

// Without resume, a message that came over a socket while the fallback stream was read waited
// for the end of the whole fallback, not of that stream: when that socket went down again
// before the stream's end was read, the next stream's newer push overtook it.
test('fallback: what a socket brought while a stream was read comes before the next stream', { timeout: 30000 }, async () => {
  let endFirstStream
  let streams = 0
  const fake = await startFakeHost({
    onEvents (url, response) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      if (++streams > 1) return response.write(streamFrame(module.encode({ route: 'push', n: 3 })))
      response.write(streamFrame(module.encode({ route: 'push', n: 1 })))
      endFirstStream = () => response.end()
    }
  })
  const conduit = new Conduit({ id: 'node-held', ipcPort: fake.ipcPort, connect: false, reconnect: { timeout: 50 } })
  const received = []
  let onReceived = () => {}
  conduit.receive((error, message) => {
    received.push(error ? String(error) : message.options.n)
    onReceived()
  })
  const arrived = (n) => new Promise((resolve) => { onReceived = () => received.includes(n) && resolve() })
  try {
    const firstSocket = fake.nextSocket()
    await conduit.connect()
    fake.accept = false
    let closed = nextEvent(conduit, 'close')
    ;(await firstSocket).close(1001, 'going away')
    await closed
    const first = arrived(1)
    conduit.startFallback()
    await first
    fake.accept = true
    const secondSocket = fake.nextSocket()
    await nextEvent(conduit, 'reopen')
    // Added after the client's own handler: called once the client has taken the message.
    const taken = new Promise((resolve) => conduit.socket.addEventListener('message', resolve, { once: true }))
    ;(await secondSocket).send(module.encode({ route: 'push', n: 2 }))
    await taken
    assert.deepEqual(received, [1], 'push 2 waits for the stream being read')
    fake.accept = false
    closed = nextEvent(conduit, 'close')
    ;(await secondSocket).close(1001, 'going away')
    await closed
    const third = arrived(3)
    endFirstStream()
    await third
    assert.deepEqual(received, [1, 2, 3])
  } finally {
    conduit.close()
    fake.stop()
  }
})

// The events stream and a socket asked with the same `resume=N` (the socket's URL was made
// before the stream's greeting was read) each report the positions after N the host released:
// the client told the application they were lost twice, or told it of ones it had.
test('resume: positions reported lost are counted once, and never ones that were delivered', () => {
  const state = new module.ResumeState()
  const message = (pairs) => module.decode(module.encode(pairs))
  const push = (position) => state.admit(message([['route', 'push'], ['pos', String(position)]]))
  const greeting = ({ epoch = 'e1', resumed, lost, reset = false }) => state.admit(message([
    ['route', 'conduit.resume'], ['epoch', epoch], ['resumed', String(resumed)], ['replayed', '0'], ['lost', String(lost)], ['ack', '0'],
    ...(reset ? [['reset', 'true']] : [])])).greeting
  greeting({ resumed: 0, lost: 0, reset: true })
  for (let position = 1; position <= 10; position++) push(position)
  assert.equal(greeting({ resumed: 10, lost: 5 }).lost, 5, "the stream's greeting: 11–15 released")
  push(16)
  assert.equal(greeting({ resumed: 10, lost: 5 }).lost, 0, "the socket's greeting, from the same resume=10")
  assert.equal(greeting({ resumed: 10, lost: 7 }).lost, 1, '16 was delivered, 17 is news')
  assert.deepEqual(greeting({ epoch: 'e2', resumed: 16, lost: 0, reset: true }), { reset: true, lost: 0 })
  push(1)
  assert.equal(greeting({ epoch: 'e2', resumed: 1, lost: 3 }).lost, 3, 'after a reset, positions (and losses) start again')
})

// Greetings as the host makes them for a socket's or a stream's URL: it keeps the id's epoch,
// and one asked for without it, or with another, resets it to a new one.
function epochKeepingGreeter () {
  let epoch
  let epochs = 0
  return (url) => {
    const reset = epoch === undefined || url.searchParams.get('epoch') !== epoch
    if (reset) epoch = `e${++epochs}`
    return module.encode([['route', 'conduit.resume'], ['epoch', epoch], ['resumed', url.searchParams.get('resume')],
      ['replayed', '0'], ['lost', '0'], ['ack', '0'], ...(reset ? [['reset', 'true']] : [])])
  }
}

// A send before the first socket opened started the events stream: the host made the id's
// resume state for it (epoch E1), the socket, asked for meanwhile without an epoch, reset it
// (E2), and a brand-new client was told of a reset. The fake host keeps an epoch as the host
// does; the test holds the port's answer until a stream asked for has attached, and the
// stream's greeting until the socket has asked, so the socket's URL is made without it.
/**
 * A fake host keeping an epoch as the host does, whose port answer (`answerPort()`) and events
 * stream's greeting (`streamAttached` gives it and the response) the test holds back;
 * `askedForStream()` says whether a stream was asked for. `restore()` puts fetch back.
 */
async function heldBackFakeHost () {
  const greeting = epochKeepingGreeter()
  let attached
  const streamAttached = new Promise((resolve) => { attached = resolve })
  const fake = await startFakeHost({
    onEvents (url, response) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      attached({ greeting: greeting(url), response })
    }
  })
  const realFetch = globalThis.fetch
  let askedForStream = false
  let answerPort
  const portAnswered = new Promise((resolve) => { answerPort = resolve })
  globalThis.fetch = async (url, init) => {
    if (String(url).includes('/internal.conduit.events')) askedForStream = true
    if (String(url).includes('/internal.conduit.status')) await portAnswered
    return realFetch(url, init)
  }
  return { fake, greeting, streamAttached, answerPort, askedForStream: () => askedForStream, restore: () => { globalThis.fetch = realFetch } }
}

test('resume: a send before the first socket opens causes no reset', { timeout: 30000 }, async () => {
  const { fake, greeting, streamAttached, answerPort, askedForStream, restore } = await heldBackFakeHost()
  const conduit = new Conduit({ id: 'node-early-send', ipcPort: fake.ipcPort, resume: true })
  let resets = 0
  conduit.addEventListener('reset', () => resets++)
  try {
    assert.equal(conduit.send({ route: 'echo', token: 'first' }), true)
    const stream = askedForStream() ? await streamAttached : undefined
    answerPort()
    const socket = await fake.nextSocket()
    if (stream) {
      stream.response.write(streamFrame(stream.greeting))
      const deadline = Date.now() + 10000
      while (conduit.resumeStats.epoch === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    socket.send(greeting(socket.url))
    // Sent once the socket's greeting was taken.
    const first = await socket.nextMessage()
    assert.equal(first.options.token, 'first')
    assert.equal(resets, 0, 'a brand-new client was told of a reset')
  } finally {
    restore()
    conduit.close()
    fake.stop()
  }
})

// A split message whose middle part did not decode: the error was reported, then the first
// and last parts were joined and delivered as the whole message, with a hole in it.
test('parts: a message with a part that does not decode is dropped whole, not joined around the hole', { timeout: 30000 }, async () => {
  const fake = await startFakeHost()
  const conduit = new Conduit({ id: 'node-hole', port: fake.port, ipcPort: 0, connect: false })
  const received = []
  let done
  const after = new Promise((resolve) => { done = resolve })
  conduit.receive((error, message) => {
    received.push(error ? error.code : `${message.options.route}: ${[...new Set(message.payload)]}`)
    if (message?.options.route === 'after') done()
  })
  conduit.addEventListener('error', () => {})
  try {
    const socket = fake.nextSocket()
    await conduit.connect()
    const part = (byte, more) => module.encode(more ? { route: 'file', more: true } : { route: 'file' }, new Uint8Array(10).fill(byte))
    const broken = part(2, true)
    broken[2] = 0xFF // the first byte of the first key: not UTF-8
    for (const message of [part(1, true), broken, part(3, false), module.encode({ route: 'after' }, new Uint8Array([4]))]) (await socket).send(message)
    await after
    assert.deepEqual(received, ['invalid-utf8', 'after: 4'])
  } finally {
    conduit.close()
    fake.stop()
  }
})

// A resuming client given a port and no IPC port started the events stream when its socket
// closed, at http://127.0.0.1:0/, and asked it again about once a second for ever, keeping
// Node alive after its reconnect had given up.
test('fallback: a client without an IPC port reads no events stream', { timeout: 30000 }, async () => {
  const fake = await startFakeHost()
  const realFetch = globalThis.fetch
  const fetched = []
  globalThis.fetch = (url, init) => {
    fetched.push(String(url))
    return realFetch(url, init)
  }
  const conduit = new Conduit({ id: 'node-no-ipc', port: fake.port, ipcPort: 0, resume: true, connect: false, reconnect: { retries: 1, timeout: 10 } })
  try {
    const socket = fake.nextSocket()
    await conduit.connect()
    fake.accept = false
    const gaveUp = new Promise((resolve) => conduit.addEventListener('error', (event) => /gave up/.test(event.error?.message) && resolve()))
    ;(await socket).close(1001, 'going away')
    await gaveUp
    assert.deepEqual(fetched, [])
  } finally {
    globalThis.fetch = realFetch
    conduit.close()
    fake.stop()
  }
})

// With resume, a message the client dropped (a part that does not decode, or over the joining
// limit) never reached resume's bookkeeping: its positions were not received, the next
// connect's `resume=` stayed below it, the host sent it again, and the application was told of
// its error again. Now its last part receives it, and a copy of it is a duplicate, unseen.
test('resume: a message dropped for a part that does not decode is received, and its copy is a duplicate', { timeout: 30000 }, async () => {
  const fake = await startFakeHost()
  const conduit = new Conduit({ id: 'node-hole-resume', port: fake.port, ipcPort: 0, resume: true, connect: false, reconnect: { timeout: 10 } })
  const received = []
  let done
  const after = new Promise((resolve) => { done = resolve })
  let failed
  const errorSeen = new Promise((resolve) => { failed = resolve })
  conduit.receive((error, message) => {
    received.push(error ? error.code : message.options.route)
    if (error) failed()
    if (message?.options.route === 'after') done()
  })
  conduit.addEventListener('error', () => {})
  const greeting = (url, reset) => module.encode([['route', 'conduit.resume'], ['epoch', 'e1'], ['resumed', url.searchParams.get('resume')],
    ['replayed', '0'], ['lost', '0'], ['ack', '0'], ...(reset ? [['reset', 'true']] : [])])
  const part = (position, more) => module.encode([['route', 'file'], ...(more ? [['more', 'true']] : []), ['pos', String(position)]], new Uint8Array(10))
  const broken = part(2, true)
  broken[2] = 0xFF // the first byte of the first key: not UTF-8
  const dropped = [part(1, true), broken, part(3, false)]
  try {
    const first = fake.nextSocket()
    await conduit.connect()
    const socket = await first
    socket.send(greeting(socket.url, true))
    for (const frame of dropped) socket.send(frame)
    await errorSeen
    const second = fake.nextSocket()
    socket.close(1001, 'going away')
    const again = await second
    assert.equal(again.url.searchParams.get('resume'), '3', 'the dropped message was received')
    // A copy, as when the events stream and a socket were asked from the same position.
    again.send(greeting(again.url, false))
    for (const frame of dropped) again.send(frame)
    again.send(module.encode([['route', 'after'], ['pos', '4']]))
    await after
    assert.deepEqual(received, ['invalid-utf8', 'after'])
    assert.equal(conduit.resumeStats.duplicates, 1)
  } finally {
    conduit.close()
    fake.stop()
  }
})

// A resuming socket that closed before its first greeting started the events stream: asked
// without an epoch, it made the host reset the id's state made for the socket, and the next
// socket, asked without one too, reset it again: a `reset` event for a brand-new client. The
// fake host keeps an epoch as the host does, and holds the stream's greeting until the next
// socket has asked, so that socket's URL is made without the stream's epoch.
test('resume: a socket closed before its first greeting starts no events stream (no reset)', { timeout: 30000 }, async () => {
  const greeting = epochKeepingGreeter()
  let streams = 0
  let stream
  const fake = await startFakeHost({
    onEvents (url, response) {
      streams++
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      stream = { greeting: greeting(url), response }
    }
  })
  const conduit = new Conduit({ id: 'node-early-close', ipcPort: fake.ipcPort, resume: true, connect: false, reconnect: { timeout: 10 } })
  let resets = 0
  conduit.addEventListener('reset', () => resets++)
  conduit.addEventListener('error', () => {})
  try {
    const first = fake.nextSocket()
    await conduit.connect()
    const socket = await first
    greeting(socket.url) // the host made the id's state; the socket closes before its greeting is read
    const second = fake.nextSocket()
    socket.close(1001, 'going away')
    const again = await second
    if (stream) {
      stream.response.write(streamFrame(stream.greeting))
      const deadline = Date.now() + 10000
      while (conduit.resumeStats.epoch === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    again.send(greeting(again.url))
    conduit.send({ route: 'echo', token: 'first' })
    // Sent once the socket's greeting was taken.
    assert.equal((await again.nextMessage()).options.token, 'first')
    assert.equal(resets, 0, 'a brand-new client was told of a reset')
    assert.equal(streams, 0)
  } finally {
    conduit.close()
    fake.stop()
  }
})

// An acknowledgement owed on one socket (its 200 ms timer running) went out on the next socket
// before that socket's greeting was read: after a reset greeting, the host took the old epoch's
// position for one of the new epoch and released positions the client never read.
test('resume: no acknowledgement goes out on a socket before its greeting', { timeout: 30000 }, async () => {
  const { fake, conduit, counts } = await fakeAndResumingClient('node-stale-ack')
  const push = (position) => module.encode([['route', 'push'], ['pos', String(position)]])
  try {
    const socket = await connectGreeted(fake, conduit)
    // Three positions: fewer than 32, so their acknowledgement waits for its 200 ms timer.
    for (let position = 1; position <= 3; position++) socket.send(push(position))
    await until(() => counts.delivered === 3)
    const second = fake.nextSocket()
    socket.close(1001, 'going away')
    const again = await second
    // Past the timer, the greeting held back: nothing may have been acknowledged yet.
    const firstFromClient = again.nextMessage()
    assert.equal(await Promise.race([firstFromClient, sleep(600).then(() => null)]), null)
    // Once it is read, acknowledgements flow as before.
    again.send(greetingOfE1({ resumed: 3 }))
    for (let position = 4; position <= 6; position++) again.send(push(position))
    assert.equal(String((await firstFromClient).options.ack), '6')
  } finally {
    conduit.close()
    fake.stop()
  }
})

// `send` handed every message to the socket: sent to a host that read nothing, they grew the
// page's memory without end. Past 8 MiB unsent it refuses (false), and nothing it accepted is
// lost: once the host reads, all of it arrives in order, and `send` takes more.
test('send: to a host that reads nothing, refused past 8 MiB unsent, and nothing accepted is lost', { timeout: 60000 }, async () => {
  const { fake, conduit, socket } = await fakeAndConnectedClient('node-unread-sends')
  try {
    socket.pauseReading()
    const payload = new Uint8Array(60000)
    const cap = (64 << 20) / 60000
    let sent = 0
    while (sent < cap && conduit.send({ route: 'fill', n: String(sent) }, payload)) sent++
    assert.ok(sent < cap, '64 MiB taken for a host that reads nothing')
    socket.resumeReading()
    for (let n = 0; n < sent; n++) assert.equal(String((await socket.nextMessage()).options.n), String(n))
    await until(() => conduit.send({ route: 'after' }))
  } finally {
    conduit.close()
    fake.stop()
  }
})

// A cancellation went through `send`'s bound: a request aborted while the socket held 8 MiB
// unsent was never cancelled on the host, and its handler's work ran on.
test('send: a cancellation goes out past the bound of unsent bytes', { timeout: 60000 }, async () => {
  const { fake, conduit, socket } = await fakeAndConnectedClient('node-unread-cancel')
  try {
    const abort = new AbortController()
    const request = conduit.request('slow', { signal: abort.signal }).catch((error) => error)
    const { token } = (await socket.nextMessage()).options
    socket.pauseReading()
    const payload = new Uint8Array(60000)
    const cap = (64 << 20) / 60000
    let sent = 0
    while (sent < cap && conduit.send({ route: 'fill' }, payload)) sent++
    assert.equal(conduit.send({ route: 'refused' }), false, 'the bound is reached')
    abort.abort(new Error('given up'))
    assert.equal((await request).message, 'given up')
    socket.resumeReading()
    for (let n = 0; n < sent; n++) assert.equal((await socket.nextMessage()).options.route, 'fill')
    assert.equal(String((await socket.nextMessage()).options.cancel), String(token))
  } finally {
    conduit.close()
    fake.stop()
  }
})

// Resume acknowledged every 32 messages received, each handed to the socket: a host that sent
// and read nothing filled the page's memory with them (2,000 here). While the socket holds
// unsent bytes the acknowledgement waits, and goes out once.
test('resume: a host that reads nothing gets one acknowledgement once it does', { timeout: 60000 }, async () => {
  const { fake, conduit, counts } = await fakeAndResumingClient('node-unread-acks')
  try {
    const socket = await connectGreeted(fake, conduit)
    assert.equal(conduit.send({ route: 'probe' }), true)
    assert.equal((await socket.nextMessage()).options.route, 'probe', 'sent once the greeting was taken')
    socket.pauseReading()
    // The client's own messages fill what the kernel takes, acknowledged window by window as a
    // host would that reads them: then the socket holds what it can't send (once the kernel
    // has taken what it will: right after a send it holds all of it).
    const payload = new Uint8Array(60000)
    let sent = 1
    for (let round = 0; round < 20; round++) {
      await until(() => conduit.send({ route: 'fill' }, payload))
      sent++
      while (conduit.send({ route: 'fill' }, payload)) sent++
      socket.send(module.encode([['route', 'conduit.ack'], ['ack', String(sent)]]))
      await sleep(200)
      if (conduit.socket.bufferedAmount > 1 << 20) break
    }
    assert.ok(conduit.socket.bufferedAmount > 1 << 20)
    const count = 64000
    for (let position = 1; position <= count; position++) socket.send(module.encode([['route', 'push'], ['pos', String(position)]]))
    await until(() => counts.delivered === count)
    socket.resumeReading()
    let acknowledgements = 0
    for (;;) {
      const ack = (await socket.nextMessage()).options.ack
      if (ack === undefined) continue
      acknowledgements++
      if (String(ack) === String(count)) break
    }
    assert.ok(acknowledgements <= 2, `${acknowledgements} acknowledgements waited in the client`)
  } finally {
    conduit.close()
    fake.stop()
  }
})

// An acknowledgement above every position the client sent (a host's mistake) released the
// messages still waiting to go out: they were never sent, and nothing told the application.
test('resume: messages not sent yet stay whatever an acknowledgement says', { timeout: 30000 }, async () => {
  const { fake, conduit } = await fakeAndResumingClient('node-ack-above')
  try {
    const socket = await connectGreeted(fake, conduit)
    assert.equal(conduit.send({ route: 'probe' }), true)
    assert.equal((await socket.nextMessage()).options.route, 'probe')
    const second = fake.nextSocket()
    const closed = nextEvent(conduit, 'close')
    socket.close(1001, 'going away')
    await closed
    // Kept while the next socket has no greeting: none of these goes out before it.
    for (let n = 1; n <= 3; n++) assert.equal(conduit.send({ route: 'kept', n }), true)
    const again = await second
    again.send(greetingOfE1({ ack: 1000000 }))
    const resent = []
    for (let n = 1; n <= 3; n++) resent.push(await again.nextMessage())
    assert.deepEqual(resent.map((message) => String(message.options.n)), ['1', '2', '3'])
    assert.deepEqual(resent.map((message) => String(message.options.pos)), ['2', '3', '4'], 'the probe, sent, was acknowledged')
  } finally {
    conduit.close()
    fake.stop()
  }
})

// `pos` and `ack` are the connection's (SPEC §9): an application's own `ack` went out as it was,
// and the host took it for an acknowledgement of host positions the client may never have had.
test("resume: an application's pos and ack never reach the host", { timeout: 30000 }, async () => {
  const fake = await startFakeHost()
  const conduit = new Conduit({ id: 'node-app-ack', ipcPort: fake.ipcPort, resume: true, connect: false })
  conduit.addEventListener('error', () => {})
  try {
    const socket = await connectGreeted(fake, conduit)
    assert.equal(conduit.send({ route: 'note', ack: 77, pos: 9 }), true)
    const sent = await socket.nextMessage()
    assert.equal(sent.options.route, 'note')
    assert.deepEqual(sent.headers.filter(([name]) => name === 'ack' || name === 'pos'), [['pos', '1']])
  } finally {
    conduit.close()
    fake.stop()
  }
})

// `.` and `..` are ids of the alphabet, but a URL parser drops them from the socket's path as
// dot segments: `/../0` became `/0`, and the host refused a path the application never asked for.
test('an id a URL path cannot carry is refused when the client is made, with a sentence', () => {
  for (const [options, words] of [[{ id: '..' }, "'..'"], [{ id: '.' }, "'.'"], [{ id: 'a b' }, "'a b'"],
    [{ id: 'x'.repeat(65) }, 'x'.repeat(65)], [{ id: 'ok', windowId: '..' }, 'windowId']]) {
    assert.throws(() => new Conduit({ ...options, port: 1, connect: false }), (error) => error instanceof TypeError && error.message.includes(words))
  }
  for (const id of ['..a', 'a.b_c-D', 18446744073709551615n, 'x'.repeat(64)]) new Conduit({ id, port: 1, connect: false }).close()
})

// The route went into the IPC URL as it was: `echo?x=1` ran `echo` with a header `x`, and a
// control route ran as a message's (`internal.conduit.stop` paused the host), which the socket refuses.
test('fallback: a route is one path segment of the IPC URL, and a control route is refused', { timeout: 30000 }, async () => {
  const injected = await Conduit.ipc('echo?x=1', { headers: { token: '1' } })
  assert.equal(injected.status, 404, 'the route is "echo?x=1", which is no route')
  await injected.arrayBuffer()
  const conduit = new Conduit({ id: 'node-control-refused', connect: false })
  try {
    await assert.rejects(conduit.sendOrFallback({ route: 'internal.conduit.diagnostics' }), (error) => error instanceof TypeError && /control route/.test(error.message))
    await assert.rejects(conduit.sendOrFallback({ route: 'echo', key: 'k' }), (error) => error instanceof TypeError && /'key'/.test(error.message))
  } finally {
    conduit.close()
  }
})

// A listener that accepted and never answered held a status query for 300 s (Node's own
// limit; a browser's none), and an answer that was not the host's resolved `undefined`.
test('control calls: at most 10 s by default, and an answer that is not the host\'s is an error', { timeout: 40000 }, async () => {
  const { createServer } = await import('node:http')
  const silent = createServer(() => {})
  const stranger = createServer((request, response) => response.end('hello'))
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  await new Promise((resolve) => stranger.listen(0, '127.0.0.1', resolve))
  try {
    const started = Date.now()
    await assert.rejects(Conduit.status({ ipcPort: silent.address().port }))
    assert.ok(Date.now() - started < 20000, `waited ${Date.now() - started} ms`)
    await assert.rejects(Conduit.status({ ipcPort: stranger.address().port }), /not the Conduit host's/)
    await assert.rejects(Conduit.waitForActiveState({ maxQueriesForStatus: 1, sharedKey: 'not-the-key-123' }), /the last: /)
  } finally {
    silent.closeAllConnections()
    silent.close()
    stranger.close()
  }
})

// A UTF-8 header value came back from the IPC fallback as mojibake ('Ð·Ð½Ð°…'): `fetch` gives
// header bytes one per character.
test('fallback: a reply\'s UTF-8 header values arrive as sent', { timeout: 30000 }, async () => {
  const conduit = new Conduit({ id: 'node-ipc-utf8', connect: false, reconnect: { retries: 0 } })
  const replies = []
  conduit.receive((error, message) => { if (!error) replies.push(message) })
  conduit.addEventListener('error', () => {})
  try {
    assert.equal(await conduit.sendOrFallback({ route: 'echo', note: 'значение ✓' }), 'ipc')
    assert.equal(replies.find((reply) => reply.options.route === 'echo')?.options.note, 'значение ✓')
  } finally {
    conduit.close()
  }
})

// `timeout: Infinity` (or past 2^31 - 1 ms) fired at once, an aborted signal threw instead of
// rejecting, headers given as pairs went as headers `0`, `1`, and `reconnect: null` threw from
// the socket's close handler, uncaught.
test('request: long and bad timeouts, an aborted signal, headers as pairs; reconnect: null', { timeout: 30000 }, async () => {
  const fake = await startFakeHost()
  const conduit = new Conduit({ id: 'node-request-options', ipcPort: fake.ipcPort, connect: false, reconnect: null })
  conduit.addEventListener('error', () => {})
  try {
    const first = fake.nextSocket()
    await conduit.connect()
    const socket = await first
    const forever = conduit.request('slow', { timeout: Infinity, headers: [['a', '1'], ['b', '2']] })
    const asked = (await socket.nextMessage()).options
    assert.deepEqual([asked.a, asked.b, asked.route], [1, 2, 'slow'])
    await sleep(300)
    socket.send(module.encode([['token', asked.token], ['n', '7']]))
    assert.equal((await forever).options.n, 7, 'answered after 300 ms, not timed out at once')
    await assert.rejects(conduit.request('x', { timeout: NaN }), TypeError)
    let returned
    assert.doesNotThrow(() => { returned = conduit.request('x', { signal: AbortSignal.abort(new Error('given up')) }) })
    await assert.rejects(returned, /given up/)
    socket.close(1001, 'going away')
    await until(() => !conduit.isOpen)
  } finally {
    conduit.close()
    fake.stop()
  }
})

// SPEC §2: text frames are no Conduit messages. A string from the host was encoded and
// decoded as one, and delivered.
test('a text frame from the host is an error and closes the socket, and is not delivered', { timeout: 30000 }, async () => {
  const { fake, conduit, socket } = await fakeAndConnectedClient('node-text-frame')
  const received = []
  const errors = []
  conduit.receive((error, message) => { if (!error) received.push(message) })
  conduit.addEventListener('error', (event) => errors.push(event.error ?? event.detail?.error))
  try {
    socket.sendText(String.fromCharCode(...module.encode([['route', 'x']], 'hi')))
    await until(() => errors.some((error) => error?.code === 'text'))
    await until(() => !conduit.isOpen)
    assert.deepEqual(received, [])
  } finally {
    conduit.close()
    fake.stop()
  }
})

// `close()` let a connect in progress run on to its timeout (and fail then, with an `error`
// event after the close), and an IPC call in flight still handed its reply to the application.
test('close(): a connect in progress ends at once, and nothing reaches the application after it', { timeout: 30000 }, async () => {
  const { createServer: createNetServer } = await import('node:net')
  const { createServer: createHTTPServer } = await import('node:http')
  const silent = createNetServer(() => {})
  const slowIPC = createHTTPServer((request, response) => {
    if (!request.url.startsWith('/echo')) return response.writeHead(404).end()
    setTimeout(() => response.writeHead(200, { route: 'echo', token: 't' }).end('late'), 500)
  })
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  await new Promise((resolve) => slowIPC.listen(0, '127.0.0.1', resolve))
  const after = []
  try {
    const connecting = new Conduit({ id: 'node-close-connecting', port: silent.address().port, ipcPort: 0, connect: false, reconnect: { attemptTimeout: 20000 } })
    connecting.addEventListener('error', (event) => after.push(event))
    const attempt = connecting.connect()
    await sleep(200)
    const closedAt = Date.now()
    connecting.close()
    await assert.rejects(attempt, (error) => error.code === 'closed')
    assert.ok(Date.now() - closedAt < 5000, `ended ${Date.now() - closedAt} ms after close()`)
    const invoking = new Conduit({ id: 'node-close-invoking', port: silent.address().port, ipcPort: slowIPC.address().port, connect: false, reconnect: { retries: 0 } })
    invoking.addEventListener('error', () => {})
    invoking.receive((error, message) => after.push(error ?? message))
    const sent = invoking.sendOrFallback({ route: 'echo', token: 't' })
    await sleep(100)
    invoking.close()
    await assert.rejects(sent, (error) => error.code === 'closed')
    await sleep(600)
    assert.deepEqual(after, [], 'nothing after close()')
  } finally {
    silent.close()
    slowIPC.closeAllConnections()
    slowIPC.close()
  }
})

// Sent as text nobody meant: an object header value as '[object Object]', an array as '1,2',
// a SharedArrayBuffer or a Blob payload as the JSON '{}'.
test('codec: object and array header values and Blob payloads are refused; a SharedArrayBuffer is its bytes', () => {
  for (const value of [{ b: 1 }, [1, 2], () => 1]) assert.throws(() => module.encode({ a: value }), TypeError)
  assert.throws(() => module.encode({ route: 'x' }, new Blob(['hi'])), TypeError)
  const shared = new SharedArrayBuffer(3)
  new Uint8Array(shared).set([1, 2, 3])
  assert.deepEqual([...module.decode(module.encode({ route: 'x' }, shared)).payload], [1, 2, 3])
  assert.deepEqual(module.decode(module.encode({ a: 1, b: true, c: 5n, d: 'x' })).headers, [['a', '1'], ['b', 'true'], ['c', '5'], ['d', 'x']])
})

// A cancellation goes past a full window, but requests that time out while nothing is taken
// (the socket down, over IPC) must not grow it without end.
test('resume: cancellations go past a full window by 64 KiB at most', () => {
  const state = new module.ResumeState()
  const payload = new Uint8Array(60000)
  while (state.number({ route: 'fill' }, payload)) {}
  assert.equal(state.number({ route: 'more' }), undefined, 'full')
  let cancels = 0
  while (state.number({ cancel: `token-${cancels}` }, undefined, true) && cancels < 1e6) cancels++
  assert.ok(cancels > 1000 && cancels < 65536 / 10, `${cancels} cancellations past the window`)
})

// 600 requests time out together, and the host answers each `CancelledError` (its cancel
// crossed the reply). Only the newest 256 tokens were remembered: 344 answers reached receive.
test('requests: the late answers of many requests that timed out together are all swallowed', { timeout: 60000 }, async () => {
  const { fake, conduit, socket } = await fakeAndConnectedClient('node-many-late')
  const leaked = []
  let sentinel = false
  conduit.receive((error, message) => {
    if (error) return
    if (message.options.route === 'sentinel') sentinel = true
    else leaked.push(message.options.token)
  })
  try {
    const count = 600
    await Promise.all(Array.from({ length: count }, () => conduit.request('slow', { timeout: 50 }).catch(() => {})))
    const tokens = []
    while (tokens.length < count) {
      const message = await socket.nextMessage()
      if (message.options.route === 'slow') tokens.push(String(message.options.token))
    }
    for (const token of tokens) socket.send(module.encode([['route', 'slow'], ['token', token], ['error', 'CancelledError']]))
    socket.send(module.encode({ route: 'sentinel' }))
    await until(() => sentinel)
    assert.equal(leaked.length, 0, `${leaked.length} late answers reached receive`)
  } finally {
    conduit.close()
    fake.stop()
  }
})

// Held behind a stream that did not end, a socket's messages were weighed by their last part's
// frame: 64 messages of 1 MiB in 17 parts counted about a kilobyte, and were all held.
test('fallback: messages in parts held behind the stream count whole toward its 8 MiB', { timeout: 60000 }, async () => {
  const fake = await startFakeHost({
    onEvents (url, response) {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      response.flushHeaders()
    }
  })
  const conduit = new Conduit({ id: 'node-held-parts', ipcPort: fake.ipcPort, connect: false, reconnect: { timeout: 50 } })
  const limit = new Promise((resolve) => conduit.addEventListener('error', (event) => {
    if ((event.error ?? event.detail?.error)?.code === 'limit') resolve()
  }))
  try {
    conduit.startFallback()
    const next = fake.nextSocket()
    await conduit.connect()
    const socket = await next
    const part = new Uint8Array(65535)
    for (let n = 0; n < 16; n++) {
      for (let p = 0; p < 16; p++) socket.send(module.encode([['route', 'push'], ['more', 'true']], part))
      socket.send(module.encode([['route', 'push'], ['n', String(n)]]))
    }
    await limit
  } finally {
    conduit.close()
    fake.stop()
  }
})

// With resume on and the window full, `sendOrFallback` goes over IPC: the application's own
// `pos` and `ack` went too, though they are left out on the socket (SPEC §9).
test('resume: an application\'s pos and ack are not sent over IPC', { timeout: 60000 }, async () => {
  const queries = []
  const ipc = createHTTPServer((request, response) => {
    const url = new URL(request.url, 'http://ipc')
    if (url.pathname === '/internal.conduit.status') return response.writeHead(200).end(JSON.stringify({ data: { port: 1, isActive: false } }))
    if (url.pathname === '/internal.conduit.events') return response.writeHead(409).end()
    queries.push(url.searchParams)
    response.writeHead(200).end('x')
  })
  await new Promise((resolve) => ipc.listen(0, '127.0.0.1', resolve))
  const conduit = new Conduit({ id: 'node-ipc-pos', ipcPort: ipc.address().port, resume: true, connect: false, reconnect: { retries: 0 } })
  conduit.addEventListener('error', () => {})
  try {
    while (conduit.send({ route: 'x' }, new Uint8Array(65535)));
    assert.equal(await conduit.sendOrFallback([['route', 'echo'], ['pos', '999'], ['ack', '5'], ['token', 't1']], 'hi'), 'ipc')
    const query = queries.find((params) => params.get('token') === 't1')
    assert.ok(query, 'the message went over IPC')
    assert.equal(query.has('pos') || query.has('ack'), false, `sent: ${query}`)
  } finally {
    conduit.close()
    ipc.close()
  }
})

// Tokens were `js.1`, `js.2`, … in every instance: a page reloaded on a resuming id (instance A
// got a reply and closed before acknowledging it, instance B asked at once) had the host's reset
// carry A's reply to `js.1` over to B, and B's own request `js.1` resolved with it.
test('request: tokens differ between instances, so a reloaded page is not answered with the last one\'s reply', { timeout: 30000 }, async () => {
  const text = (message) => new TextDecoder().decode(message.payload)
  const first = new Conduit({ id: 'node-reloaded', resume: true })
  await first.connect()
  assert.equal(text(await first.request('echo', { payload: 'for the first instance' })), 'for the first instance')
  first.close() // within the 200 ms before its acknowledgement
  const second = new Conduit({ id: 'node-reloaded', resume: true })
  const strays = []
  second.receive((error, message) => strays.push(error ?? text(message)))
  try {
    assert.equal(text(await second.request('echo', { payload: 'for the second instance' })), 'for the second instance')
    // What the first did not acknowledge comes to the second (docs/resume.md), as a message.
    await until(() => strays.length > 0, 5000)
    assert.deepEqual(strays, ['for the first instance'])
  } finally {
    second.close()
  }
})

// A socket's URL was made with the epoch known then, while the events stream asked beside it had
// yet to bring its greeting: the id had expired, the stream's greeting reset it (a new epoch) and
// the stream delivered pushes of it; the socket then stated the old epoch, the host reset the id
// again and sent those pushes again with new positions: each was delivered twice. Network delay
// is played by holding the stream's request and the socket's opening.
test('resume: a socket and a stream asked together state one epoch: pushes after an expiry come once', { timeout: 60000 }, async () => {
  const brief = await startHost({ env: { CONDUIT_CLIENT_GRACE_SECONDS: '1' } })
  const ipc = { host: brief.host, ipcPort: brief.ipcPort, sharedKey: brief.sharedKey }
  const realFetch = globalThis.fetch
  const RealWebSocket = globalThis.WebSocket
  let held = false
  let openStream, openSocket
  const streamGate = new Promise((resolve) => { openStream = resolve })
  const socketGate = new Promise((resolve) => { openSocket = resolve })
  globalThis.fetch = async (url, init) => {
    if (held && String(url).includes('/internal.conduit.events')) await streamGate
    return realFetch(url, init)
  }
  globalThis.WebSocket = class extends EventTarget {
    constructor (url) {
      super()
      const start = () => {
        const socket = this.real = new RealWebSocket(url)
        socket.binaryType = 'arraybuffer'
        for (const type of ['open', 'message', 'error', 'close']) socket[`on${type}`] = (event) => this[`on${type}`]?.(event)
      }
      held ? socketGate.then(start) : start()
    }

    get readyState () { return this.real?.readyState ?? 0 }
    get bufferedAmount () { return this.real?.bufferedAmount ?? 0 }
    send (data) { this.real.send(data) }
    close (code, reason) { this.real ? this.real.close(code, reason) : socketGate.then(() => this.real.close(code, reason)) }
  }
  const conduit = new Conduit({ id: 'node-stale-epoch', ...ipc, resume: true, connect: false })
  const seen = []
  conduit.receive((error, message) => { if (message?.options.route === 'test.push') seen.push(message.options.n) })
  conduit.addEventListener('error', () => {})
  try {
    await conduit.connect()
    await conduit.request('echo') // greeted: the first epoch
    held = true
    conduit.socket.close() // the stream and a reconnect are asked for, and held
    await sleep(2500) // the id expires on the host
    openStream()
    await sleep(500)
    assert.ok((await Conduit.ipc('test.push', { ...ipc, headers: { to: conduit.id, count: 3 }, body: 'p' })).ok)
    await sleep(300)
    openSocket()
    await until(() => conduit.isOpen && seen.length >= 3, 10000)
    await sleep(1000) // anything sent again would be here by now
    assert.deepEqual(seen, [1, 2, 3])
  } finally {
    globalThis.fetch = realFetch
    globalThis.WebSocket = RealWebSocket
    conduit.close()
    await brief.stop()
  }
})

// `sendOrFallback` (a request while the window is full) started the events stream before the
// first greeting, skipping the check the socket's close and `send` make: asked without an epoch it
// made the id's state, the socket asked without one too reset it, and a brand-new client got a
// `reset` event. As in 'a send before the first socket opens causes no reset' above.
test('resume: sendOrFallback before the first greeting starts no stream (no reset)', { timeout: 30000 }, async () => {
  const { fake, greeting, streamAttached, answerPort, askedForStream, restore } = await heldBackFakeHost()
  const conduit = new Conduit({ id: 'node-full-first', ipcPort: fake.ipcPort, resume: true, connect: false, reconnect: { timeout: 10 } })
  let resets = 0
  conduit.addEventListener('reset', () => resets++)
  conduit.addEventListener('error', () => {})
  try {
    while (conduit.send({ route: 'fill' }, new Uint8Array(60000)));
    assert.equal(await conduit.sendOrFallback({ route: 'echo', token: 'over-ipc' }), 'ipc')
    const stream = askedForStream() ? await streamAttached : undefined
    answerPort()
    const socket = await fake.nextSocket()
    if (stream) {
      stream.response.write(streamFrame(stream.greeting))
      await until(() => conduit.resumeStats.epoch !== undefined, 10000)
    }
    socket.send(greeting(socket.url))
    assert.equal((await socket.nextMessage()).options.route, 'fill', 'what is kept goes out once the greeting is read')
    assert.equal(resets, 0, 'a brand-new client was told of a reset')
  } finally {
    restore()
    conduit.close()
    fake.stop()
  }
})

// With resume `send` looked at the window only, and a message counted as sent once handed to
// the socket: a host that acknowledged positions it never read made the socket hold 142 MiB.
// Now past 8 MiB unsent (as without resume) messages wait in the window, which is bounded, and go
// out, in order, none lost, once the socket drains.
test('resume: to a host that acknowledges what it never read, at most 8 MiB unsent, and nothing accepted is lost', { timeout: 60000 }, async () => {
  const { fake, conduit } = await fakeAndResumingClient('node-unread-acked')
  try {
    const socket = await connectGreeted(fake, conduit)
    assert.equal(conduit.send({ route: 'probe' }), true)
    assert.equal((await socket.nextMessage()).options.route, 'probe', 'sent once the greeting was taken')
    socket.pauseReading()
    const payload = new Uint8Array(60000)
    let sent = 0
    let most = 0
    for (let round = 0; round < 24; round++) {
      while (conduit.send({ route: 'fill', n: String(sent) }, payload)) sent++
      most = Math.max(most, conduit.socket.bufferedAmount)
      socket.send(module.encode([['route', 'conduit.ack'], ['ack', '9007199254740991']]))
      await sleep(20)
    }
    assert.ok(most <= (8 << 20) + 65536, `the socket held ${(most / 2 ** 20).toFixed(1)} MiB unsent`)
    socket.resumeReading()
    for (let n = 0; n < sent; n++) assert.equal(String((await socket.nextMessage()).options.n), String(n))
    socket.send(module.encode([['route', 'conduit.ack'], ['ack', '9007199254740991']]))
    await until(() => conduit.send({ route: 'after' }))
  } finally {
    conduit.close()
    fake.stop()
  }
})

// Each resume send looked through every message kept for the first not sent: a burst of sends
// took quadratic time (30,000 in 6.4 s, 0.4 s without resume). Timed at two sizes 16 times
// apart (the best of two each), against a host that reads and never acknowledges: about 16 times
// longer now, about 90 times with the scan.
test('resume: a burst of sends takes time linear in its size', { timeout: 120000 }, async (t) => {
  const burst = async (count) => {
    const { fake, conduit } = await fakeAndResumingClient(`node-burst-${count}`)
    try {
      const socket = await connectGreeted(fake, conduit)
      conduit.send({ route: 'probe' })
      await socket.nextMessage() // greeted: sends go out at once
      const started = performance.now()
      for (let n = 0; n < count; n++) conduit.send({ route: 'r' }, 'x')
      return performance.now() - started
    } finally {
      conduit.close()
      fake.stop()
    }
  }
  await burst(2000) // warm
  // The best of three each: a pause of the machine's (a collection, another process) in one
  // run is not the client's.
  const best = async (count) => Math.min(await burst(count), await burst(count), await burst(count))
  const small = await best(5000)
  const large = await best(80000)
  t.diagnostic(`5,000 sends: ${small.toFixed(0)} ms, 80,000: ${large.toFixed(0)} ms`)
  assert.ok(large < 40 * small, `80,000 sends took ${large.toFixed(0)} ms, 5,000 took ${small.toFixed(0)} ms`)
})

// `close()` while `connect()` asked IPC for the port let the query run to its time limit (10 s
// by default), though the docs say a connect in progress ends at once.
test('close(): a connect asking IPC for the port ends at once', { timeout: 30000 }, async () => {
  const silentIPC = createHTTPServer(() => {}) // takes the query, never answers
  await new Promise((resolve) => silentIPC.listen(0, '127.0.0.1', resolve))
  try {
    for (const resume of [false, true]) {
      const conduit = new Conduit({ id: 'node-close-in-status', ipcPort: silentIPC.address().port, connect: false, resume, reconnect: { attemptTimeout: 5000 } })
      const attempt = conduit.connect()
      await sleep(100)
      const closedAt = Date.now()
      conduit.close()
      const error = await attempt.then(() => null, (caught) => caught)
      const took = Date.now() - closedAt
      assert.equal(error?.code, 'closed', `resume: ${resume}: ${error}`)
      assert.ok(took < 2000, `resume: ${resume}: ended ${took} ms after close()`)
    }
  } finally {
    silentIPC.closeAllConnections()
    silentIPC.close()
  }
})

// Refused only by `reconnect()`, bad options were taken by the constructor, and every automatic
// reconnect after a drop failed with a TypeError nobody saw: the socket never came back.
test('reconnect options are checked when the client is made', () => {
  for (const reconnect of [{ retries: '5' }, { retries: -1 }, { timeout: NaN }, { timeout: '500' }, { attemptTimeout: 0 }, 5, 'often']) {
    assert.throws(() => new Conduit({ id: 'node-bad-options', connect: false, reconnect }), TypeError, JSON.stringify(reconnect))
  }
  for (const reconnect of [undefined, null, {}, { retries: Infinity, timeout: 0, attemptTimeout: 1 }]) {
    new Conduit({ id: 'node-good-options', connect: false, reconnect }).close()
  }
})

/** A numbered push (`route: push`, `pos`, `n`), encoded. */
const numberedPush = (position, n) => module.encode([['route', 'push'], ['pos', String(position)], ['n', n]])

/**
 * Runs `body({ fake, conduit, errors })` with a resuming client of a fake host (not connected)
 * whose error events `errors` records; closes both after.
 */
async function withResumingClient (id, body) {
  const { fake, conduit } = await fakeAndResumingClient(id)
  const errors = []
  conduit.addEventListener('error', (event) => errors.push(event.error))
  try {
    await body({ fake, conduit, errors })
  } finally {
    conduit.close()
    fake.stop()
  }
}

/** Connects `conduit`, greeted, and sends `frames` on its socket; the socket it reconnects with (null after 5 s). */
async function reconnectAfterSending (fake, conduit, frames) {
  const socket = await connectGreeted(fake, conduit)
  const next = fake.nextSocket()
  for (const frame of frames) socket.send(frame)
  return Promise.race([next, sleep(5000).then(() => null)])
}

// The error names the position the next socket is asked from: the last received. A frame that
// does not decode took a position of its own, so that is not the one before the next expected
// (the error said 2 here while the socket was asked from 1).
test('resume: the skipped-position error names the position asked from again', { timeout: 30000 }, async () => {
  await withResumingClient('node-skipped-after-undecodable', async ({ fake, conduit, errors }) => {
    const again = await reconnectAfterSending(fake, conduit, [numberedPush(1, 'p1'), new Uint8Array([9, 9, 9]), numberedPush(9, 'bogus')])
    assert.ok(again, `no reconnect; errors: ${errors.map(String)}`)
    assert.equal(again.url.searchParams.get('resume'), '1')
    const skipped = errors.filter((error) => error?.code === 'position').map((error) => error.message)
    assert.deepEqual(skipped, ['the host sent position 9 where 3 was next; resumed again from 1'])
  })
})

// One position far ahead (a gap no greeting reported as lost) was taken: every message after it
// was dropped as a "duplicate", unseen. It is an error event now, and the socket is resumed
// again from the last position received: nothing is lost, nothing comes twice.
test('resume: a host position that skips ahead is an error, and the socket resumes from the last one received', { timeout: 30000 }, async () => {
  await withResumingClient('node-skipped', async ({ fake, conduit, errors }) => {
    const seen = []
    conduit.receive((error, message) => { if (!error) seen.push(String(message.options.n)) })
    const sent = [[1, 'p1'], [2, 'p2'], [9007199254740991, 'bogus'], [3, 'p3'], [4, 'p4'], [5, 'p5']]
    const again = await reconnectAfterSending(fake, conduit, sent.map(([position, n]) => numberedPush(position, n)))
    assert.ok(again, `no reconnect; delivered ${seen}, errors: ${errors.map(String)}`)
    const resumed = Number(again.url.searchParams.get('resume'))
    again.send(greetingOfE1({ resumed }))
    for (let position = resumed + 1; position <= 5; position++) again.send(numberedPush(position, `p${position}`))
    await until(() => seen.length >= 5, 5000)
    await sleep(300)
    assert.deepEqual(seen, ['p1', 'p2', 'p3', 'p4', 'p5'])
    assert.equal(errors.filter((error) => error?.code === 'position').length, 1)
  })
})
