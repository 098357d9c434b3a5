// Conduit JavaScript client (SPEC §7): the codec and a `Conduit` class with the surface of the
// runtime's `oro:conduit` module. One ES module, no dependencies; browsers and Node ≥ 20
// (Node 20 needs `--experimental-websocket` for `globalThis.WebSocket`).
//
// The host serves this file at `http://127.0.0.1:<ipcPort>/conduit.js?key=<key>`; imported
// from there, the IPC address and the key are the defaults for every client.

export const MAX_PAYLOAD_BYTES = 0xffff
/** The largest encoded message: the count, 255 headers at their largest, the payload's length and the largest payload. */
export const MAX_ENCODED_BYTES = 1 + 255 * (1 + 255 + 2 + 0xffff) + 2 + 0xffff
/** The most an IPC response may bring, as in the Swift client (`IPCClient.maxResponseBytes`). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/** The most of a socket's messages held behind a fallback stream (8 MiB, as the Swift client). */
const HELD_BYTES = 8 * 1024 * 1024
// Tokens of requests given up on (timed out, aborted) whose late answers are swallowed: four
// times the requests a host runs for a connection at once. 256 let most of 600 requests that
// timed out together through to the receive handler (their `CancelledError`s).
const IGNORED_TOKENS = 4096
/** Unsent bytes a socket may hold before `send` refuses (8 MiB, as the Swift client). */
const MAX_UNSENT_BYTES = 8 * 1024 * 1024
/**
 * How far past that bound, or the resume window, a request's cancellation may go (as the Swift
 * client): requests that time out while nothing is taken can't grow it without end.
 */
const PAST_BOUND_BYTES = 64 * 1024
/**
 * A client or window id (SPEC §2): 1–64 of `[A-Za-z0-9._-]`, but not `.` or `..`, which a URL
 * parser drops from a path as dot segments (the host then read another path, and refused it).
 */
const ID_PATTERN = /^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$/
const MAX_HEADERS = 0xff
const MAX_KEY_BYTES = 0xff
const MAX_VALUE_BYTES = 0xffff

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * A codec error: `code` is `truncated`, `trailing-bytes`, `invalid-utf8`, `limit`, `text` (a text
 * frame), or `position` (resume: a host position that skipped ahead).
 */
export class ConduitCodecError extends Error {
  constructor (code, message) {
    super(message)
    this.name = 'ConduitCodecError'
    this.code = code
  }
}

/** An error reply to `request()`: `type` and `message` as the host sent them (SPEC §3). */
export class ConduitReplyError extends Error {
  constructor (type, message, reply) {
    super(`${type}: ${message}`)
    this.name = 'ConduitReplyError'
    this.type = type
    this.reply = reply
  }
}

/** The typed view of a header value (SPEC §1): booleans, null, safe integers, decimals. */
export function typed (value) {
  if (value === 'true') return true
  if (value === 'false') return false
  if (value === 'null') return null
  if (/^-?[0-9]+$/.test(value)) {
    const number = Number(value)
    return Number.isSafeInteger(number) ? number : value
  }
  if (/^-?[0-9]+\.[0-9]+$/.test(value)) return Number(value)
  return value
}

/** Headers as ordered `[key, value]` string pairs, from an object or an array of pairs. */
function headerPairs (options = {}) {
  const entries = Array.isArray(options) ? options : Object.entries(options)
  return entries
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => {
      // An object went as '[object Object]', an array as '1,2': never what was meant.
      if ((typeof value === 'object' && value !== null) || typeof value === 'function' || typeof value === 'symbol') {
        throw new TypeError(`header '${String(key)}': a value is a string, number, bigint or boolean, not ${Array.isArray(value) ? 'an array' : typeof value}`)
      }
      return [String(key), String(value)]
    })
}

function bytesOf (payload) {
  if (payload === undefined || payload === null) return new Uint8Array(0)
  if (typeof payload === 'string') return utf8Encoder.encode(payload)
  if (payload instanceof Uint8Array) return payload
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload)
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)
  // Both went as the JSON text '{}'.
  if (typeof SharedArrayBuffer !== 'undefined' && payload instanceof SharedArrayBuffer) return new Uint8Array(payload)
  if (typeof Blob !== 'undefined' && payload instanceof Blob) throw new TypeError('a Blob payload must be read first: await blob.arrayBuffer()')
  return utf8Encoder.encode(JSON.stringify(payload))
}

/**
 * What a joined message holds, about: its payload and its headers' text. (Its last part's frame
 * was counted: a 1 MiB message in 17 parts weighed 15 bytes, and 64 of them were held.)
 */
function heldSize (message) {
  let bytes = message.payload.byteLength
  for (const [name, value] of message.headers) bytes += name.length + String(value).length
  return bytes
}

/**
 * An IPC response's body, read up to `MAX_RESPONSE_BYTES`: past it the read is cancelled and a
 * `limit` error thrown, so whatever answers on the port (another program, after the host went)
 * can't make the page buffer without end.
 */
async function bodyOf (response) {
  const chunks = []
  let total = 0
  const reader = response.body?.getReader()
  for (;;) {
    const { value, done } = reader ? await reader.read() : { done: true }
    if (done) break
    total += value.byteLength
    if (total > MAX_RESPONSE_BYTES) {
      reader.cancel().catch(() => {})
      throw new ConduitCodecError('limit', `the IPC response passes ${MAX_RESPONSE_BYTES} bytes`)
    }
    chunks.push(value)
  }
  const body = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return body
}

/**
 * Encodes one message (SPEC §1). `options`: an object or `[key, value]` pairs (kept in
 * order; numbers, booleans and bigints become strings). Refuses anything over a limit.
 */
export function encode (options, payload) {
  const headers = headerPairs(options).map(([key, value]) => [utf8Encoder.encode(key), utf8Encoder.encode(value)])
  const body = bytesOf(payload)
  if (headers.length > MAX_HEADERS) throw new ConduitCodecError('limit', `${headers.length} headers, at most ${MAX_HEADERS}`)
  let size = 1 + 2 + body.byteLength
  for (const [key, value] of headers) {
    if (key.byteLength > MAX_KEY_BYTES) throw new ConduitCodecError('limit', `a header key of ${key.byteLength} bytes, at most ${MAX_KEY_BYTES}`)
    if (value.byteLength > MAX_VALUE_BYTES) throw new ConduitCodecError('limit', `a header value of ${value.byteLength} bytes, at most ${MAX_VALUE_BYTES}`)
    size += 1 + key.byteLength + 2 + value.byteLength
  }
  if (body.byteLength > MAX_PAYLOAD_BYTES) throw new ConduitCodecError('limit', `a payload of ${body.byteLength} bytes in one message, at most ${MAX_PAYLOAD_BYTES}`)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let offset = 0
  out[offset++] = headers.length
  for (const [key, value] of headers) {
    out[offset++] = key.byteLength
    out.set(key, offset)
    offset += key.byteLength
    view.setUint16(offset, value.byteLength)
    out.set(value, offset + 2)
    offset += 2 + value.byteLength
  }
  view.setUint16(offset, body.byteLength)
  out.set(body, offset + 2)
  return out
}

/**
 * Decodes one message: `{ headers, options, payload }` — `headers` the `[key, value]` pairs
 * in order, `options` their typed view (a repeated key gives the last value), `payload` a
 * `Uint8Array` view of the input. Throws `ConduitCodecError` on malformed input.
 */
export function decode (data) {
  const bytes = bytesOf(data)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let offset = 0
  const need = (count, what) => {
    if (offset + count > bytes.byteLength) throw new ConduitCodecError('truncated', `truncated: ${what} needs ${count} bytes at offset ${offset}`)
  }
  const text = (length, what) => {
    need(length, what)
    try {
      return utf8Decoder.decode(bytes.subarray(offset, offset += length))
    } catch {
      throw new ConduitCodecError('invalid-utf8', `${what} at offset ${offset - length} is not UTF-8`)
    }
  }
  need(1, 'the header count')
  const count = bytes[offset++]
  const headers = []
  for (let index = 0; index < count; index++) {
    need(1, 'a key length')
    const key = text(bytes[offset++], 'a key')
    need(2, 'a value length')
    const valueLength = view.getUint16(offset)
    offset += 2
    headers.push([key, text(valueLength, 'a value')])
  }
  need(2, 'the payload length')
  const payloadLength = view.getUint16(offset)
  offset += 2
  need(payloadLength, 'the payload')
  const payload = bytes.subarray(offset, offset + payloadLength)
  if (offset + payloadLength !== bytes.byteLength) {
    throw new ConduitCodecError('trailing-bytes', `${bytes.byteLength - offset - payloadLength} bytes after the payload`)
  }
  const options = {}
  for (const [key, value] of headers) options[key] = typed(value)
  return { headers, options, payload }
}

/**
 * The frames of one client→host message of any size (SPEC §1): payloads over 64 KiB go in
 * parts, each with the message's headers, all but the last with `more=true` too, as the
 * Swift client sends them: a part the host's chunk queue refuses is answered with the
 * request's `token` (a route-less chunk's refusal reached no request, and the parts after it
 * made a request of their own, answered as if it were the whole one).
 * `extra()` gives headers added to every frame (resume's `pos`), in place of those named in
 * `without`. A digest check or a
 * cancellation is answered or applied as the one message it is (SPEC §3, §8): sent in parts,
 * its first parts were queued as chunks that the next request was joined to, so its payload
 * must fit one frame.
 */
export function encodeFrames (options, payload, extra = () => [], without = []) {
  const body = bytesOf(payload)
  const headers = headerPairs(options).filter(([name]) => !without.includes(name))
  const has = (name) => headers.some(([key]) => key === name)
  if (body.byteLength > MAX_PAYLOAD_BYTES && (has('digest') || (!has('route') && has('cancel')))) {
    throw new ConduitCodecError('limit', `a digest check or a cancellation is one message: a payload of ${body.byteLength} bytes, at most ${MAX_PAYLOAD_BYTES}`)
  }
  const frames = []
  let offset = 0
  for (; body.byteLength - offset > MAX_PAYLOAD_BYTES; offset += MAX_PAYLOAD_BYTES) {
    frames.push(encode([...headers, ['more', 'true'], ...extra()], body.subarray(offset, offset + MAX_PAYLOAD_BYTES)))
  }
  frames.push(encode([...headers, ...extra()], body.subarray(offset)))
  return frames
}

/**
 * A header value as a resume position (SPEC §9: decimal digits only), within the integers a
 * number holds exactly; `undefined` for anything else, which is then taken as absent: `NaN`
 * would release every kept message as acknowledged, or stop duplicates from being recognised.
 */
function positionOf (value) {
  if (value === undefined || !/^[0-9]+$/.test(String(value))) return undefined
  const position = Number(value)
  return Number.isSafeInteger(position) ? position : undefined
}

/**
 * The host's own `route` (`conduit.resume`, `conduit.ack`), which never carries `pos` (SPEC
 * §9): so routed with a `pos`, the message was numbered like any other, a handler's or a
 * worker's, to deliver, not to obey (a forged greeting reset the client's epoch).
 */
function isResumeControl (message, route) {
  return message.options.route === route && !message.headers.some(([name]) => name === 'pos')
}

/**
 * The client's side of resume (SPEC §9): numbers what it sends and keeps it until the host
 * acknowledges it (to send again after a reconnect), drops host positions already
 * delivered, and says when to acknowledge (every 32 messages or 200 ms). Exported for the
 * tests; an application turns resume on with `new Conduit({ id, resume: true })`.
 */
export class ResumeState {
  static WINDOW_BYTES = 4 << 20
  static ACK_EVERY = 32
  static ACK_WITHIN_MS = 200
  /** Unsent bytes the socket holds past which an acknowledgement waits (SwiftNIO's high water). */
  static ACK_HOLD_BYTES = 64 * 1024

  epoch = undefined
  /** Every host position up to this one was delivered. */
  received = 0
  #nextPosition = 1
  /** `{ position, frame, sent }` until the host acknowledges them (`sent`: it went out on a socket). */
  #kept = []
  #keptBytes = 0
  /** The index in `#kept` of the first not yet written on the current socket: found by a scan,
   * each send cost a look at every message kept (30,000 sends in a burst took 6.4 s, 0.4 without resume). */
  #nextToSend = 0
  #owed = 0
  #lastAckSent = 0
  #forgottenFor = undefined
  /** The last host position reported lost: a greeting that counts it again tells nothing new. */
  #lostThrough = 0
  /** The position of the last part of a message still coming, since the last greeting. */
  #partsThrough = 0
  /** Frames that did not decode since the last position taken: each may have had the next one. */
  #undecoded = 0
  duplicates = 0

  /** `resume` and `epoch` for a socket URL or the events stream. */
  query () {
    return this.epoch === undefined ? { resume: this.received } : { resume: this.received, epoch: this.epoch }
  }

  /** The frames of a message, numbered and kept; undefined when the window is full (`pastWindow`: 64 KiB further). */
  number (options, payload, pastWindow = false) {
    if (this.#keptBytes >= ResumeState.WINDOW_BYTES + (pastWindow ? PAST_BOUND_BYTES : 0)) return undefined
    // `pos` and `ack` are the connection's (SPEC §9): an application's `ack` told the host the
    // client held host positions it may never have received.
    const frames = encodeFrames(options, payload, () => [['pos', String(this.#nextPosition++)]], ['pos', 'ack'])
    const first = this.#nextPosition - frames.length
    const kept = frames.map((frame, index) => ({ position: first + index, frame, sent: false }))
    this.#kept.push(...kept)
    this.#keptBytes += frames.reduce((sum, frame) => sum + frame.byteLength, 0)
    return kept
  }

  /**
   * The host processed every client position up to `position`: of those that went out. An
   * acknowledgement above them (a host's mistake) released messages no host ever had.
   */
  acknowledged (position) {
    const count = this.#kept.findIndex((kept) => kept.position > position || !kept.sent)
    const done = this.#kept.splice(0, count < 0 ? this.#kept.length : count)
    for (const kept of done) this.#keptBytes -= kept.frame.byteLength
    this.#nextToSend = Math.max(0, this.#nextToSend - done.length)
  }

  /** After a reset the host no longer knows which of ours it processed: only those that never went out stay. */
  #forgetSent (epoch) {
    if (this.#forgottenFor === epoch) return
    this.#forgottenFor = epoch
    this.#kept = this.#kept.filter((kept) => !kept.sent)
    this.#keptBytes = this.#kept.reduce((sum, kept) => sum + kept.frame.byteLength, 0)
    this.#nextToSend = 0
  }

  /** What to send again on a new socket, in order, after its greeting: from now on `nextToSend()` gives it. */
  resend (greeting) {
    if (greeting.options.reset === true) this.#forgetSent(String(greeting.options.epoch))
    else this.acknowledged(positionOf(greeting.options.ack) ?? 0)
    this.#nextToSend = 0
    return this.#kept
  }

  /**
   * What to make of a message from the host, or of one part of a split one, in delivery order
   * and before parts are joined: `{ deliver }` (positions taken off), `{ greeting: { reset,
   * lost } }`, `{ duplicate: true }`, `{ gap: { expected, position } }` (a position past the next
   * one that no greeting said was lost: taken, it made every position below it a "duplicate",
   * dropped unseen) or `{}` (an acknowledgement). A message's last part
   * receives it, whether the joiner then delivers it or drops it (too big, a part that does not
   * decode): a dropped message left unreceived held the acknowledgement below it until the next
   * one, a reconnect meanwhile asked for it and its error came again, as did a copy's. Earlier
   * parts receive nothing: a reconnect between them asks for the whole message again.
   */
  admit (message) {
    if (isResumeControl(message, 'conduit.resume')) return { greeting: this.#greeting(message) }
    // The host may acknowledge on any message, not only `conduit.ack` (SPEC §9).
    const ack = positionOf(message.options.ack)
    if (ack !== undefined) this.acknowledged(ack)
    if (isResumeControl(message, 'conduit.ack')) return {}
    const position = positionOf(message.headers.findLast(([name]) => name === 'pos')?.[1])
    if (position === undefined) return { deliver: message }
    const last = message.options.more !== true
    if (position <= this.received) {
      if (last) this.duplicates++
      return { duplicate: true }
    }
    // SPEC §9: positions follow one another; only those a greeting counted lost may be missing.
    const expected = Math.max(this.received, this.#lostThrough, this.#partsThrough) + 1 + this.#undecoded
    if (position > expected) return { gap: { expected, position } }
    this.#undecoded = 0
    if (last) {
      this.received = position
      this.#owed++
    } else {
      this.#partsThrough = position
    }
    // `pos` and `ack` are the connection's: they never reach the application.
    const headers = message.headers.filter(([name]) => name !== 'pos' && name !== 'ack')
    const { pos: _pos, ack: _ack, ...options } = message.options
    return { deliver: { ...message, headers, options } }
  }

  #greeting (message) {
    const reset = message.options.reset === true
    const hadEpoch = this.epoch !== undefined
    this.epoch = String(message.options.epoch)
    // A message in parts on the last connection is sent again whole.
    this.#partsThrough = 0
    this.#undecoded = 0
    const lost = positionOf(message.options.lost) ?? 0
    if (reset) {
      this.received = 0
      this.#lastAckSent = 0
      this.#lostThrough = 0
      this.#forgetSent(this.epoch)
      return { reset: hadEpoch, lost }
    }
    // `lost` counts the positions after the `resumed` N that the host no longer holds. The events
    // stream and a socket asked with the same N (the second asked before the first's greeting
    // was read) both count them: only positions neither delivered nor reported yet are news.
    const resumed = positionOf(message.options.resumed) ?? this.received
    const news = Math.max(0, resumed + lost - Math.max(resumed, this.received, this.#lostThrough))
    this.#lostThrough = Math.max(this.#lostThrough, resumed + lost)
    return { reset: false, lost: news }
  }

  /** A frame from the host did not decode: its position, if it had one, is not known. */
  undecoded () {
    this.#undecoded++
  }

  /** `'now'` (then `ackFrame()`), `'later'` (schedule it) or `'no'`. */
  ackDue () {
    if (this.received <= this.#lastAckSent) return 'no'
    return this.#owed >= ResumeState.ACK_EVERY ? 'now' : 'later'
  }

  /** The bare `ack` to send now; it is then taken as sent. */
  ackFrame () {
    this.#owed = 0
    this.#lastAckSent = this.received
    return encode([['ack', String(this.received)]])
  }

  /** The next kept message to write on the current socket (in order), if any. */
  nextToSend () {
    return this.#kept[this.#nextToSend]
  }

  /** `kept`, the next ones `nextToSend()` gave, were written on the current socket. */
  markSent (kept) {
    for (const entry of kept) entry.sent = true
    this.#nextToSend += kept.length
  }
}

/**
 * Joins host→client parts: every part with `more=true` is held until one without it, up to
 * `limit` bytes (256 MiB, as the Swift client). A message past it, or with a part that does not
 * decode, is dropped whole, with one error: its later parts, up to its last, are skipped, never
 * delivered as a message of their own or joined around a hole. Parts' payloads are copied into
 * one buffer as they come: kept as they were, each (a view) held its whole frame, headers
 * included, and parts with large headers and no payload grew memory past every limit.
 */
export class PartJoiner {
  #joined = new Uint8Array(0)
  #bytes = 0
  #holding = false
  #skippingRest = false
  #limit

  constructor (limit = 256 * 1024 * 1024) { this.#limit = limit }

  /**
   * A part, decoded for `add`. One that does not decode, while parts are held or the rest of a
   * dropped message is skipped, is taken for one of theirs (it can't say whether it was the
   * last): the message is dropped, and undefined returned once it was already. With none held it
   * is taken for a message of its own, and only it is lost.
   */
  decode (data) {
    try {
      return decode(data)
    } catch (error) {
      if (this.#skippingRest) return undefined
      if (this.#holding) this.#drop(true)
      throw error
    }
  }

  /** A part dropped before it was joined (resume's duplicate): so are the rest of its message's. */
  skip (message) {
    this.#drop(message.options.more === true)
  }

  #drop (skippingRest) {
    this.#joined = new Uint8Array(0)
    this.#bytes = 0
    this.#holding = false
    this.#skippingRest = skippingRest
  }

  /** The whole message, or undefined while parts are still coming (or skipped). */
  add (message) {
    const more = message.options.more === true
    if (this.#skippingRest) {
      this.#skippingRest = more
      return undefined
    }
    const bytes = this.#bytes + message.payload.byteLength
    if (bytes > this.#limit) {
      this.#drop(more)
      throw new ConduitCodecError('limit', `a message from the host passes ${this.#limit} bytes (${bytes} so far); it is dropped`)
    }
    if (!more && !this.#holding) return message
    this.#append(message.payload)
    if (more) {
      this.#holding = true
      return undefined
    }
    const payload = this.#joined.slice(0, this.#bytes)
    this.#drop(false)
    return { ...message, payload }
  }

  /** Copies `payload` after what is held, the buffer doubling when it is full. */
  #append (payload) {
    const needed = this.#bytes + payload.byteLength
    if (needed > this.#joined.byteLength) {
      const grown = new Uint8Array(Math.max(needed, 2 * this.#joined.byteLength, 64 * 1024))
      grown.set(this.#joined.subarray(0, this.#bytes))
      this.#joined = grown
    }
    this.#joined.set(payload, this.#bytes)
    this.#bytes = needed
  }
}

// Defaults: the runtime's `globalThis.__args.conduit`, else where this module was served from.
const served = (() => {
  try {
    const url = new URL(import.meta.url)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return {}
    return { host: url.hostname, ipcPort: Number(url.port), sharedKey: url.searchParams.get('key') ?? undefined }
  } catch {
    return {}
  }
})()
const runtimeArgs = globalThis.__args?.conduit ?? {}

/** How often a resuming socket that holds 8 MiB unsent is asked whether it takes more. */
const DRAIN_POLL_MS = 50

/** A socket open this long was a success: the reconnect backoff starts over. */
const STABLE_SOCKET_MS = 5000

/** How long a control call (`status`, `stop`, …) may take unless its `signal` says otherwise. */
const CONTROL_TIMEOUT_MS = 10_000

/**
 * The longest wait a timer takes: `setTimeout` fires at once for any delay past 2^31 - 1 ms
 * (a `timeout: Infinity` request rejected after 4 ms). Past it, and for `Infinity`, no timer.
 */
const MAX_TIMER_MS = 2 ** 31 - 1
/** A timer of `ms` (a number of ms from 0 on, `Infinity` none), or a `TypeError` for anything else. */
const timerFor = (what, ms, fire) => {
  if (typeof ms !== 'number' || !(ms >= 0)) throw new TypeError(`${what} must be a number of ms from 0 on (Infinity: none), not ${String(ms)}`)
  return ms <= MAX_TIMER_MS ? setTimeout(fire, ms) : undefined
}

/**
 * `reconnect` options with their defaults, or a `TypeError` naming the bad one. The constructor
 * checks them too: refused only by each automatic reconnect, they kept the socket down unseen.
 */
function reconnectSettings (options) {
  const shown = (value) => typeof value === 'string' ? `'${value}'` : String(value)
  if (options !== undefined && options !== null && typeof options !== 'object') throw new TypeError(`reconnect: options are { retries, timeout, attemptTimeout }, not ${shown(options)}`)
  const { retries = 32, timeout = 500, attemptTimeout = 10_000 } = options ?? {}
  if (typeof retries !== 'number' || !(retries >= 0)) throw new TypeError(`reconnect.retries must be a number from 0 on, not ${shown(retries)}`)
  if (typeof timeout !== 'number' || !(timeout >= 0 && timeout <= MAX_TIMER_MS)) throw new TypeError(`reconnect.timeout must be a number of ms from 0 to ${MAX_TIMER_MS}, not ${shown(timeout)}`)
  if (typeof attemptTimeout !== 'number' || !(attemptTimeout > 0 && attemptTimeout <= MAX_TIMER_MS)) throw new TypeError(`reconnect.attemptTimeout must be a number of ms above 0, at most ${MAX_TIMER_MS}, not ${shown(attemptTimeout)}`)
  return { retries, timeout, attemptTimeout }
}

/** The wait after `failed` failed attempts: about `timeout` ms doubling, at most 30 s, with jitter. */
const backoff = (timeout, failed) => {
  const delay = Math.min(timeout * 2 ** failed, 30_000)
  return delay / 2 + Math.random() * delay / 2
}

/** What a closed client's calls fail with (the Swift client's `.closed`). */
const closedError = () => Object.assign(new Error('this Conduit is closed'), { code: 'closed' })

/** Waits `ms`, or less if `signal` aborts; the listener goes with the wait (the signal lives on). */
const sleep = (ms, signal) => new Promise((resolve) => {
  const done = () => {
    clearTimeout(timer)
    signal?.removeEventListener('abort', done)
    resolve()
  }
  const timer = setTimeout(done, ms)
  signal?.addEventListener('abort', done, { once: true })
})

/** Headers an IPC response carries that are HTTP's, not the reply message's. */
const HTTP_HEADERS = new Set(['content-length', 'content-type', 'connection', 'keep-alive', 'transfer-encoding', 'date'])

export class Conduit extends EventTarget {
  /** The socket server's current port (updated by every status query). */
  static port = Number(runtimeArgs.port ?? 0)
  static host = runtimeArgs.hostname ?? runtimeArgs.host ?? served.host ?? '127.0.0.1'
  static ipcPort = Number(runtimeArgs.ipcPort ?? served.ipcPort ?? 0)
  static sharedKey = runtimeArgs.sharedKey ?? served.sharedKey ?? ''
  /** True between `onApplicationPause()` and `onApplicationResume()`. */
  static isPaused = false
  /** Every instance not yet closed. */
  static pool = new Set()

  /** Calls `/<route>?<headers>` on the IPC listener; resolves to the `Response`. */
  static async ipc (route, { headers = {}, body, method, id, host, ipcPort, sharedKey, signal } = {}) {
    // Encoded: `echo?x=1` or `x/../echo` read as a route's query or path ran another route.
    const url = new URL(`http://${host ?? Conduit.host}:${ipcPort ?? Conduit.ipcPort}/${encodeURIComponent(route)}`)
    for (const [key, value] of headerPairs(headers)) url.searchParams.append(key, value)
    if (id !== undefined) url.searchParams.set('id', String(id))
    return fetch(url, {
      method: method ?? (body === undefined ? 'GET' : 'POST'),
      headers: { authorization: `Bearer ${sharedKey ?? Conduit.sharedKey}` },
      body,
      signal
    })
  }

  /**
   * A control route's `data`, or its error thrown (`error.type` the Conduit error type). It
   * takes at most 10 s unless `options.signal` says otherwise (a listener that accepted and
   * never answered held a status query for 300 s, `waitForActiveState` for hours).
   */
  static async control (name, options = {}) {
    const signal = options.signal ?? AbortSignal.timeout(CONTROL_TIMEOUT_MS)
    const response = await Conduit.ipc(`internal.conduit.${name}`, { ...options, signal })
    const body = await bodyOf(response)
    let answer
    try { answer = JSON.parse(new TextDecoder().decode(body)) } catch {}
    if (!response.ok || answer?.err) {
      throw Object.assign(new Error(answer?.err?.message ?? `${name}: HTTP ${response.status}`), { type: answer?.err?.type, status: response.status })
    }
    // Anything but `{"data": {…}}` is not the host's answer (what else listens on the port?).
    if (typeof answer?.data !== 'object' || answer.data === null) throw new Error(`${name}: the answer is not the Conduit host's (HTTP ${response.status}, ${body.byteLength} bytes)`)
    if (typeof answer.data.port === 'number') Conduit.port = answer.data.port
    return answer.data
  }

  /** `{ port, isActive, sharedKey }` */
  static status (options) { return Conduit.control('status', options) }
  /** `{ isActive, port, handles: { ids, count }, routes, clients }` */
  static diagnostics (options) { return Conduit.control('diagnostics', options) }
  static async getSharedKey (options) { return (await Conduit.control('getSharedKey', options)).sharedKey }

  /** Rotates the key on the host; this module and every pooled client use the new one. */
  static async setSharedKey (sharedKey, options = {}) {
    const status = await Conduit.control('setSharedKey', { ...options, headers: { sharedKey } })
    Conduit.sharedKey = sharedKey
    for (const conduit of Conduit.pool) conduit.sharedKey = sharedKey
    return status
  }

  /** Resolves with the status once the socket server is active; polls every `interval` ms. */
  static async waitForActiveState ({ maxQueriesForStatus = 32, interval = 250, ...options } = {}) {
    if (!Number.isInteger(maxQueriesForStatus) || maxQueriesForStatus < 1) throw new TypeError(`maxQueriesForStatus must be a whole number from 1 on, not ${maxQueriesForStatus}`)
    let failure
    for (let query = 1; ; query++) {
      const status = await Conduit.status(options).catch((error) => { failure = error })
      if (status?.isActive) return status
      // With why the last query failed: a wrong key read as "not active".
      if (query >= maxQueriesForStatus) throw new Error(`the Conduit server is not active after ${query} status queries${failure ? ` (the last: ${failure.message})` : ''}`, { cause: failure })
      await sleep(interval)
    }
  }

  /** The app goes to the background (the runtime's hook): stop the server, mark clients inactive. */
  static async onApplicationPause (options) {
    Conduit.isPaused = true
    for (const conduit of Conduit.pool) conduit.isActive = false
    return Conduit.control('stop', options)
  }

  /** The app is back: restart the server, learn its port, reconnect clients that want it. */
  static async onApplicationResume (options) {
    Conduit.isPaused = false
    for (const conduit of Conduit.pool) conduit.#flushKept()
    const status = await Conduit.control('start', options)
    await Promise.all([...Conduit.pool]
      .filter((conduit) => conduit.#reconnectsBySending && !conduit.isOpen)
      .map((conduit) => conduit.reconnect(conduit.reconnectOptions).catch(() => {})))
    return status
  }

  id
  windowId
  host
  port
  ipcPort
  sharedKey
  /** Reconnect after an unexpected close (`close()` clears it). */
  shouldReconnect = true
  /** Passed to `reconnect()` when it runs by itself. */
  reconnectOptions
  isActive = false
  socket = null
  #receive = null
  #connecting = null
  #reconnecting = null
  /** When the socket opened, and how many in a row closed soon after: those count as failed
   * attempts, so a host that takes the socket and closes it is not retried at round-trip pace. */
  #openedAt = 0
  #quickCloses = 0
  /** The host closed the socket as replaced by a newer one of the id: nothing reconnects it by
   * itself (a send, `sendOrFallback`, `onApplicationResume`) until `connect()` or `reconnect()`. */
  #replaced = false
  /** Sockets this client has opened: `reopen` is for the second and later. */
  #adopted = 0
  #fallback = null
  /** Without resume: the socket's messages while the fallback stream is still read, and their bytes. */
  #held = []
  #heldBytes = 0
  /** Aborted by `close()`: the client is closed for good, and a reconnect loop's wait ends at once. */
  #closing = new AbortController()
  /** `request()`s waiting for their reply, by token: `{ reply(message), fail(error) }`. */
  #pending = new Map()
  /**
   * `request()` tokens are `js.<this prefix>.<n>`: random per instance, as a page reloaded on the
   * same id (with resume) was handed the last instance's unacknowledged reply to `js.1` for its own.
   */
  #tokenPrefix = crypto.getRandomValues(new Uint32Array(1))[0].toString(36)
  #lastToken = 0
  /** Tokens of requests that ended before the host's last answer: what it still sends with
   * one is swallowed (the newest 256). */
  #ignored = new Set()
  /** Resume's positions and kept messages (SPEC §9), when asked for. */
  #resume = null
  /** Resume: the socket's greeting was answered, so new messages may follow on it. */
  #resumeReady = false
  #ackTimer = null
  /** Resume: polls a socket holding 8 MiB unsent until it takes what is kept. */
  #drainTimer = null
  /** Resume: the socket asked for and not greeted yet (`#open`, `#readFallbackWhileDown`). */
  #socketAsking = null

  /**
   * `new Conduit({ id, sharedKey, windowId, host, port, ipcPort, reconnect, resume })` connects
   * at once (`connect()` returns the same attempt); a failure is an `error` event, then
   * `reconnect()` keeps trying. `resume: true`: every message exactly once across reconnects,
   * replacement, pause/resume and the fallback stream (SPEC §9); `send` then keeps a message
   * while the socket is down (and returns true), and `reset` and `lost` (`event.count`)
   * events tell what could not be recovered.
   */
  constructor ({ id, sharedKey, windowId = 0, host, port, ipcPort, reconnect = {}, connect = true, resume = false } = {}) {
    super()
    if (id === undefined || id === null || id === '') throw new TypeError('new Conduit({ id }): an id is required')
    this.id = String(id)
    this.windowId = String(windowId)
    for (const [name, value] of [['id', this.id], ['windowId', this.windowId]]) {
      if (!ID_PATTERN.test(value)) throw new TypeError(`new Conduit({ ${name} }): '${value}' is not 1–64 of [A-Za-z0-9._-] (nor . or ..)`)
    }
    this.host = host ?? Conduit.host
    this.port = port
    this.ipcPort = ipcPort ?? Conduit.ipcPort
    this.sharedKey = sharedKey ?? Conduit.sharedKey
    reconnectSettings(reconnect)
    this.reconnectOptions = reconnect ?? {}
    if (resume) this.#resume = new ResumeState()
    Conduit.pool.add(this)
    if (connect) {
      this.connect().catch((error) => {
        if (this.#closed) return
        this.#emit('error', { error })
        if (this.shouldReconnect) this.reconnect(this.reconnectOptions).catch(() => {})
      })
    }
  }

  get isOpen () { return this.socket?.readyState === 1 }

  get #closed () { return this.#closing.signal.aborted }

  /** Resume's state (`resume: true`): `{ epoch, received, duplicates }`; undefined without it. */
  get resumeStats () {
    const resume = this.#resume
    return resume && { epoch: resume.epoch, received: resume.received, duplicates: resume.duplicates }
  }

  /** Where this client's IPC calls go. */
  get #ipc () { return { host: this.host, ipcPort: this.ipcPort, sharedKey: this.sharedKey } }

  /** Opens the socket; resolves once it is open (`callback(error | null)` as well). */
  connect (callback) {
    this.#replaced = false
    const attempt = this.#connecting ?? (this.#connecting = this.#open().finally(() => { this.#connecting = null }))
    attempt.then(() => callback?.(null), (error) => callback?.(error))
    return attempt
  }

  /**
   * One attempt, bounded in time (`reconnect.attemptTimeout`, 10 s as the Swift client's): a
   * peer that took the connection and never answered its upgrade or status query held
   * `connect()` and every reconnect for as long as the runtime waits (about 300 s in Node).
   */
  async #open () {
    if (this.#closed) throw closedError()
    if (this.isOpen) return
    const limit = reconnectSettings(this.reconnectOptions).attemptTimeout
    if (!this.port && this.ipcPort) {
      // `close()` ends the query at once too (it ran on to its time limit, 10 s by default).
      const asking = new AbortController()
      const timer = setTimeout(() => asking.abort(new Error(`no status answer from ${this.host}:${this.ipcPort} within ${limit} ms`)), limit)
      const closing = () => asking.abort(closedError())
      this.#closing.signal.addEventListener('abort', closing, { once: true })
      let status
      try {
        status = await Conduit.status({ ...this.#ipc, signal: asking.signal })
      } finally {
        clearTimeout(timer)
        this.#closing.signal.removeEventListener('abort', closing)
      }
      if (!status.isActive) throw new Error('the Conduit server is paused')
      this.port = status.port
      // Closed while it asked: a socket opened now (to be closed at once) would still replace
      // one of the same id that another client opened meanwhile.
      if (this.#closed) throw closedError()
    }
    if (!this.port) throw new Error('no Conduit port: give { port } or { ipcPort }')
    // Resume: one socket or stream at a time is asked for and not greeted. A stream not greeted
    // yet may be changing the epoch (the host reset the id for it): this socket, stating the old
    // one, made the host reset the id again and send what the stream had delivered again, with
    // new positions. It is abandoned before it delivers anything (the host carries what it wrote
    // on it over to this socket); no stream is asked while this socket is not greeted.
    if (this.#resume && this.#fallback && !this.#fallback.greeted) this.#fallback.stream?.abort()
    const url = new URL(`ws://${this.host}:${this.port}/${encodeURIComponent(this.id)}/${encodeURIComponent(this.windowId)}`)
    url.searchParams.set('key', this.sharedKey)
    for (const [name, value] of Object.entries(this.#resume?.query() ?? {})) url.searchParams.set(name, value)
    const socket = new WebSocket(url)
    socket.binaryType = 'arraybuffer'
    if (this.#resume) this.#socketAsking = socket
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no answer from ${this.host}:${this.port} within ${limit} ms`))
        socket.close()
      }, limit)
      // `close()` ends the attempt at once (it ran on to its timeout, and failed then).
      const closing = () => {
        clearTimeout(timer)
        reject(closedError()) // before the socket's own error, which closing it may fire at once
        socket.close()
      }
      this.#closing.signal.addEventListener('abort', closing, { once: true })
      const settle = (outcome) => (value) => {
        clearTimeout(timer)
        this.#closing.signal.removeEventListener('abort', closing)
        outcome(value)
      }
      socket.onopen = settle(resolve)
      socket.onerror = settle(() => reject(new Error(`can't connect to ${this.host}:${this.port}`)))
      socket.onclose = settle((event) => reject(new Error(`closed while connecting (${event.code})`)))
    }).catch((error) => {
      if (this.#socketAsking === socket) this.#socketAsking = null
      throw error
    })
    if (this.#closed) { // close() was called meanwhile
      socket.close(1000)
      throw closedError()
    }
    this.#adopt(socket)
  }

  #adopt (socket) {
    this.#adopted++
    this.socket = socket
    this.isActive = true
    this.#openedAt = Date.now()
    this.#resumeReady = false
    // Between two tries no stream is open, so none is cut off: the fallback ends now.
    if (this.#fallback?.pausing) this.#fallback.abort.abort()
    const joiner = new PartJoiner()
    socket.onmessage = (event) => {
      // SPEC §2: text frames are no Conduit messages (a string was encoded and decoded as one).
      if (typeof event.data === 'string') {
        this.#emit('error', { error: new ConduitCodecError('text', 'the host sent a text frame: Conduit messages are binary') })
        // (1003 is the host's answer to one; a page may close with 1000 or 3000–4999 only.)
        return socket.close(1000, 'text frames are not Conduit messages')
      }
      this.#deliver(joiner, event.data, socket)
    }
    socket.onerror = () => this.#emit('error', { error: new Error('socket error') })
    socket.onclose = (event) => {
      if (this.#socketAsking === socket) this.#socketAsking = null
      if (this.socket !== socket) return
      this.socket = null
      this.isActive = false
      // A newer socket with this id (another tab) replaced this one: taking the id back by
      // itself would replace that one in turn, and the two would trade it for ever.
      this.#replaced = event.code === 1000 && event.reason === 'replaced'
      // Replaced, it did not fail: counted as a quick close, it made the reconnect that takes
      // the id back wait as after a failed attempt.
      if (!this.#replaced) this.#quickCloses = Date.now() - this.#openedAt < STABLE_SOCKET_MS ? this.#quickCloses + 1 : 0
      this.#emit('close', { code: event.code, reason: event.reason })
      if (!this.shouldReconnect || Conduit.isPaused || this.#replaced) return
      // Resume switches to the fallback stream while the socket is down (SPEC §9).
      if (this.#resume) this.#fallBackResuming()
      this.reconnect(this.reconnectOptions).catch(() => {})
    }
    this.#emit('open')
  }

  /**
   * Reconnects with exponential backoff and jitter: up to `retries` attempts, waiting about
   * `timeout` ms, doubling each time, at most 30 s. Each attempt asks the IPC listener for
   * the current port. Dispatches `reopen` on success.
   */
  reconnect (options) {
    // `reconnect: null` threw from the socket's close handler, uncaught: Node exited.
    let settings
    try {
      settings = reconnectSettings(options)
    } catch (error) {
      return Promise.reject(error)
    }
    const { retries, timeout } = settings
    this.#reconnecting ??= (async () => {
      const failedAlready = this.#quickCloses
      if (failedAlready > 0) await sleep(backoff(timeout, failedAlready - 1), this.#closing.signal)
      for (let attempt = 0; ; attempt++) {
        if (this.#closed) throw closedError()
        if (!this.shouldReconnect && attempt > 0) throw new Error('closed')
        try {
          if (this.ipcPort) this.port = undefined
          const adopted = this.#adopted
          await this.connect()
          // Only for a socket that follows another: not when one was open already, or when
          // this joined the first connect (a send before it, with resume).
          if (this.#adopted > adopted && this.#adopted > 1) this.#emit('reopen')
          return
        } catch (error) {
          // `retries` after the first attempt, as the Swift client counts them (SPEC §7); giving
          // up is an `error` event, or a client reconnecting by itself stopped without a word.
          if (attempt >= retries) {
            if (!this.#closed) this.#emit('error', { error: new Error(`reconnect: gave up after ${attempt + 1} attempts: ${error.message}`) })
            throw error
          }
          await sleep(backoff(timeout, failedAlready + attempt), this.#closing.signal)
        }
      }
    })().finally(() => { this.#reconnecting = null })
    return this.#reconnecting
  }

  /** Sets the one message handler, `handler(error | null, { options, headers, payload })`. */
  receive (handler) {
    this.#receive = handler
  }

  /**
   * Sends `route` with a fresh `token` and resolves with its reply `{ options, headers,
   * payload }`; an error reply rejects with a `ConduitReplyError`. No reply within `timeout`
   * ms rejects too. `signal` (an `AbortSignal`) cancels it: the host is told (`cancel:
   * <token>`), stops the handler's work for it, and the promise rejects with the signal's
   * reason. While the socket is down it goes over IPC (`sendOrFallback`).
   */
  request (route, { headers = {}, payload, timeout = 30_000, signal } = {}) {
    const token = `js.${this.#tokenPrefix}.${++this.#lastToken}`
    return new Promise((resolve, reject) => {
      // Rejected, not thrown, as the docs say (it threw before the promise was made).
      if (signal?.aborted) return reject(signal.reason)
      const settle = (outcome) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#pending.delete(token)
        outcome()
      }
      const fail = (error) => settle(() => reject(error))
      const ignoreLater = () => {
        if (this.#ignored.size >= IGNORED_TOKENS) this.#ignored.delete(this.#ignored.values().next().value)
        this.#ignored.add(token)
      }
      // Cancelled on the host too, its late reply swallowed: a request that timed out ran on
      // with nobody waiting, or, kept while the socket was down, ran after the reconnect.
      const cancel = (error) => {
        ignoreLater()
        this.#sendCancel(token)
        fail(error)
      }
      const onAbort = () => cancel(signal.reason)
      let timer
      try {
        timer = timerFor('request: timeout', timeout, () => cancel(new Error(`no reply to ${route} (token ${token}) within ${timeout} ms`)))
      } catch (error) {
        return reject(error)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(token, {
        fail,
        reply: (message) => settle(() => {
          const type = message.options.error
          if (type === undefined) return resolve(message)
          // The host's chunk queue refused a part: the parts after it, already sent, make a
          // request of their own, and its answers (the reply to a cut-off payload) are not this one's.
          if (type === 'PayloadTooLargeError') ignoreLater()
          let text = ''
          try { text = JSON.parse(utf8Decoder.decode(message.payload)).err.message } catch {}
          reject(new ConduitReplyError(String(type), text, message))
        })
      })
      // As pairs, so that headers given as pairs are taken as `send` takes them (spread, they
      // became headers `0`, `1`, …).
      const pairs = [...headerPairs(headers)].filter(([name]) => name !== 'route' && name !== 'token')
      this.sendOrFallback([...pairs, ['route', route], ['token', token]], payload).catch(fail)
    })
  }

  /**
   * Sends one message of any payload size; false when the socket is not open, or holds 8 MiB
   * it has not sent yet (a host that reads slowly or not at all: sent on, messages grew the
   * page's memory without end), with `resume`: kept and sent once a socket is back; false
   * only when too much waits unacknowledged; and once the client is closed.
   */
  send (options, payload) {
    return this.#send(options, payload, false)
  }

  /**
   * A cancellation goes out past `send`'s bounds (8 MiB unsent, the resume window), up to
   * 64 KiB further: refused there, it left the handler's work for the request running on the host.
   */
  #sendCancel (token) {
    this.#send({ cancel: token }, undefined, true)
  }

  #send (options, payload, pastBounds) {
    if (this.#closed) return false
    if (this.#resume) return this.#sendNumbered(options, payload, pastBounds)
    if (!this.isOpen || Conduit.isPaused || this.socket.bufferedAmount >= MAX_UNSENT_BYTES + (pastBounds ? PAST_BOUND_BYTES : 0)) return false
    const frames = encodeFrames(options, payload)
    for (const frame of frames) this.socket.send(frame)
    return true
  }

  /** Whether a send (or the app's return) may reconnect: not a client the host replaced (it
   * took the id back from the newer socket, which then did the same). */
  get #reconnectsBySending () { return this.shouldReconnect && !this.#replaced }

  #sendNumbered (options, payload, pastWindow) {
    if (!this.#resume.number(options, payload, pastWindow)) return false
    if (this.isOpen && this.#resumeReady && !Conduit.isPaused) {
      this.#sendUnsent()
    } else if (!this.isOpen && this.#reconnectsBySending && !Conduit.isPaused) {
      // (A socket open but not yet greeted needs nothing: its greeting sends what is kept.)
      this.#fallBackResuming()
      this.reconnect(this.reconnectOptions).catch(() => {})
    }
    return true
  }

  /**
   * The fallback stream of a resuming client whose socket is down, once a first greeting told
   * the epoch: before, the stream (re)made the id's state with an epoch that the socket, asked for
   * without one meanwhile, did not state, and the host reset it (a `reset` event for nothing).
   */
  #fallBackResuming () {
    if (this.#resume.epoch !== undefined) this.startFallback()
  }

  /** What was kept while paused, or while the socket held too much, goes out on an open, greeted socket now. */
  #flushKept () {
    if (this.#resume && this.isOpen && this.#resumeReady && !Conduit.isPaused) this.#sendUnsent()
  }

  /**
   * Sends what is kept and not yet sent on this socket, in order (a message kept while
   * `Conduit.isPaused` goes before the next one: sent alone, the next one's acknowledgement
   * released it unsent), while the socket holds less than 8 MiB unsent, as `send` without resume:
   * a host that acknowledged what it never read grew the socket's buffer without end (142 MiB in
   * a test). The rest waits in the window, which is bounded, and goes out as the socket drains.
   */
  #sendUnsent () {
    for (let entry = this.#resume.nextToSend(); entry; entry = this.#resume.nextToSend()) {
      if (this.socket.bufferedAmount >= MAX_UNSENT_BYTES) {
        this.#drainTimer ??= setTimeout(() => {
          this.#drainTimer = null
          this.#flushKept()
        }, DRAIN_POLL_MS)
        return
      }
      this.socket.send(entry.frame)
      this.#resume.markSent([entry])
    }
  }

  /**
   * Sends over the socket if it is open; else invokes the route over IPC (the reply goes to
   * the receive handler), reads this id's pushes from the IPC fallback stream until the
   * socket is back, and reconnects in the background. Resolves to `'socket'` or `'ipc'`.
   */
  async sendOrFallback (options, payload) {
    if (this.send(options, payload)) return 'socket'
    if (this.#closed) throw closedError()
    const { route, ...headers } = Object.fromEntries(headerPairs(options))
    if (!route) throw new TypeError('sendOrFallback: IPC needs a route header')
    // `pos` and `ack` are the connection's (SPEC §9), left out here as on the socket.
    if (this.#resume) {
      delete headers.pos
      delete headers.ack
    }
    // The socket refuses these (SPEC §3): over IPC they ran (`internal.conduit.stop` paused the host).
    if (route.startsWith('internal.')) throw new TypeError(`sendOrFallback: '${route}' is a control route (Conduit.control), not one a message reaches`)
    // As the Swift client: dropped, it went unsaid.
    if ('key' in headers) throw new TypeError("sendOrFallback: a header 'key' can't travel over IPC (it is the shared key's query name)")
    // With resume, not before a first greeting, as when the socket closes (`#fallBackResuming`).
    if (this.#resume) this.#fallBackResuming()
    else this.startFallback()
    if (this.#reconnectsBySending) this.reconnect(this.reconnectOptions).catch(() => {})
    const response = await Conduit.ipc(route, { ...this.#ipc, headers, id: this.id, body: bytesOf(payload) })
    // Header values come as bytes read one per character (a `ByteString`): the host's UTF-8
    // arrived as mojibake ('Ð·Ð½Ð°…' for 'зна…').
    const replyHeaders = [...response.headers].filter(([name]) => !HTTP_HEADERS.has(name))
      .map(([name, value]) => [name, new TextDecoder().decode(Uint8Array.from(value, (character) => character.charCodeAt(0)))])
    // A refusal by the listener (the key, the budget, no place, a timeout) is no reply of a
    // handler: it has neither `error` nor `token`, and went to the receive handler as a
    // message while `request()` waited out its timeout. It answers this call all the same,
    // with `error: HTTP<status>` as the Swift client gives it.
    const has = (name) => replyHeaders.some(([key]) => key === name)
    if (response.status >= 300 && !has('error')) replyHeaders.push(['error', `HTTP${response.status}`])
    if (headers.token !== undefined && !has('token')) replyHeaders.push(['token', String(headers.token)])
    const replyPayload = await bodyOf(response)
    // Closed meanwhile: nothing more reaches the application (a message event came after close()).
    if (this.#closed) throw closedError()
    // An HTTP response, not a message to the id's socket or stream: never numbered (SPEC §9).
    this.#dispatch({
      headers: replyHeaders,
      options: Object.fromEntries(replyHeaders.map(([key, value]) => [key, typed(value)])),
      payload: replyPayload
    })
    return 'ipc'
  }

  /**
   * Reads `/internal.conduit.events?id=` while the socket is down: each frame a uint32 BE
   * length and an encoded message, handed to the receive handler. Ends when a socket for the
   * id takes over (the host ends the response) or on `close()`. With `resume` it starts by
   * itself when the socket closes after a first greeting, as the Swift client's does.
   */
  startFallback () {
    // Without an IPC port there is no stream to read (`port` alone: IPC is never asked).
    if (this.#fallback || this.isOpen || this.#closed || !this.ipcPort) return this.#fallback?.done
    // `stream`: the current stream's own abort; `greeted`: its greeting was read.
    const fallback = { abort: new AbortController(), pausing: false, stream: null, greeted: false }
    fallback.done = this.#readFallbackWhileDown(fallback)
      .catch((error) => { if (!fallback.abort.signal.aborted) this.#emit('error', { error }) })
      .finally(() => {
        this.#fallback = null
        this.#releaseHeld()
      })
    this.#fallback = fallback
    return fallback.done
  }

  /**
   * Reads the events stream until this client's socket is open again (or `close()`), as the
   * Swift client does. A refusal (409, 503) or an unreachable listener is asked again after a
   * pause that grows with each in a row; a stream that ended (a socket took the id, maybe one
   * of ours whose opening then failed) after a short one. Giving up after `retries` refusals
   * over the stream's life, or at the end of the first stream, left pushes waiting on the host,
   * unread, while the socket stayed down. (A socket replaced by another of its id starts no
   * stream: that one holds the id's pushes.)
   */
  async #readFallbackWhileDown (fallback) {
    const { signal } = fallback.abort
    let failures = 0
    while (!signal.aborted && !this.isOpen) {
      // Resume: a socket asked for and not greeted yet may be changing the epoch; a stream asked
      // now would state the old one (see `#open`). It waits for the greeting or the socket's end.
      if (this.#socketAsking) {
        fallback.pausing = true
        await sleep(50, signal)
        fallback.pausing = false
        continue
      }
      try {
        failures = await this.#readFallback(fallback) ? 0 : failures + 1
      } catch (error) {
        // Network errors (fetch's TypeError) are tried again; anything else is the caller's.
        if (!(error instanceof TypeError)) throw error
        failures++
      }
      // Now, not when the loop ends: a socket that came back and went down again while this
      // stream was read brought messages older than anything the next stream will carry.
      this.#releaseHeld()
      if (signal.aborted || this.isOpen) return
      fallback.pausing = true
      await sleep(Math.min(50 * 2 ** failures, 1000), signal)
      fallback.pausing = false
    }
  }

  /** No stream is being read: what the socket brought meanwhile follows what it carried. */
  #releaseHeld () {
    this.#heldBytes = 0
    for (const message of this.#held.splice(0)) this.#dispatch(message)
  }

  /**
   * One stream of `fallback`, as `#readStream`. With resume a socket about to be asked abandons
   * it before its greeting (see `#open`): then true, asked again at once; given up for a position
   * that skipped ahead: false, asked again after a pause that grows.
   */
  async #readFallback (fallback) {
    const stream = new AbortController()
    const end = () => stream.abort()
    fallback.abort.signal.addEventListener('abort', end, { once: true })
    fallback.stream = stream
    fallback.greeted = false
    try {
      return await this.#readStream(stream.signal)
    } catch (error) {
      if (stream.signal.aborted && !fallback.abort.signal.aborted) return stream.signal.reason?.code !== 'position'
      throw error
    } finally {
      fallback.stream = null
      fallback.abort.signal.removeEventListener('abort', end)
    }
  }

  /** One stream; true when the host ended it (a socket took over), false when it refused it. */
  async #readStream (signal) {
    const url = new URL(`http://${this.host}:${this.ipcPort}/internal.conduit.events`)
    url.searchParams.set('id', this.id)
    for (const [name, value] of Object.entries(this.#resume?.query() ?? {})) url.searchParams.set(name, value)
    const response = await fetch(url, { headers: { authorization: `Bearer ${this.sharedKey}` }, signal })
    // 409: a socket of the id is open, or was until now; 503: the listener holds as many
    // streams as it allows (or the id has no place yet). Both are asked again after a pause.
    if (response.status === 409 || response.status === 503) return false
    if (!response.ok) throw new Error(`fallback stream: HTTP ${response.status}`)
    const reader = response.body.getReader()
    const joiner = new PartJoiner()
    let pending = new Uint8Array(0)
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return true
      const joined = new Uint8Array(pending.byteLength + value.byteLength)
      joined.set(pending)
      joined.set(value, pending.byteLength)
      let offset = 0
      while (joined.byteLength - offset >= 4 && !signal.aborted) {
        const length = new DataView(joined.buffer, offset, 4).getUint32(0)
        // A length no message has (a broken stream) is an error, not 4 GB to wait for.
        if (length > MAX_ENCODED_BYTES) {
          reader.cancel().catch(() => {})
          throw new ConduitCodecError('limit', `the events stream announced a message of ${length} bytes; none is over ${MAX_ENCODED_BYTES}`)
        }
        if (joined.byteLength - offset - 4 < length) break
        this.#deliver(joiner, joined.subarray(offset + 4, offset + 4 + length))
        offset += 4 + length
      }
      pending = joined.slice(offset)
    }
  }

  /** A message from the socket `socket`, or from the fallback stream. */
  #deliver (joiner, data, socket) {
    let message
    try {
      message = joiner.decode(data)
      if (!message) this.#resume?.undecoded()
      // Resume sees every part before the joiner, which may drop its message (SPEC §9).
      if (message && this.#resume) message = this.#admit(joiner, message, socket)
      if (message) message = joiner.add(message)
    } catch (error) {
      if (!message) this.#resume?.undecoded()
      this.#handOn(error, null)
      this.#emit('error', { error })
      return
    }
    if (!message) return
    // Without resume, what the stream has yet to deliver was written before anything on this
    // socket (the host ends the stream when a socket takes over): the socket's wait for its end.
    if (socket && !this.#resume && this.#fallback) this.#hold(message, heldSize(message))
    else this.#dispatch(message)
  }

  /**
   * Holds a socket's message behind the stream, up to `HELD_BYTES`: a host ends the stream
   * when the socket takes over, so one that has not by then never will. A browser's socket
   * can't stop reading, so the stream is given up instead (an error event): held without
   * end, the socket's messages grew the page's memory and never reached the application.
   */
  #hold (message, bytes) {
    this.#held.push(message)
    this.#heldBytes += bytes
    if (this.#heldBytes <= HELD_BYTES || !this.#fallback || this.#fallback.abort.signal.aborted) return
    this.#emit('error', { error: new ConduitCodecError('limit', `the events stream did not end after the socket came back (${this.#heldBytes} bytes from the socket wait behind it); it is given up`) })
    this.#fallback.abort.abort()
  }

  /** Resume's part of a message or part from the host: what goes on to the joiner, if anything. */
  #admit (joiner, message, socket) {
    if (socket && isResumeControl(message, 'conduit.resume')) this.#resumeOn(socket, message)
    const admitted = this.#resume.admit(message)
    if (admitted.greeting) {
      // A socket asked from now on states the epoch the stream's greeting told (see `#open`).
      if (!socket && this.#fallback) this.#fallback.greeted = true
      if (admitted.greeting.reset) this.#emit('reset')
      if (admitted.greeting.lost > 0) this.#emit('lost', { count: admitted.greeting.lost })
    }
    if (admitted.gap) this.#positionSkipped(admitted.gap, socket)
    // The duplicate's later parts are skipped too, even one that does not decode (a copy of a
    // message dropped for it): its error was reported with the first copy.
    if (admitted.duplicate) joiner.skip(message)
    this.#acknowledgeWhenDue()
    return admitted.deliver
  }

  /**
   * A host position past the next one that no greeting counted lost (SPEC §9): taken, it made
   * every position below it a duplicate, dropped unseen. It is not delivered; an error event,
   * and the socket or stream is given up: the next, asked from the last position received, has
   * what is missing sent again (or counted in its greeting's `lost`).
   */
  #positionSkipped ({ expected, position }, socket) {
    const error = new ConduitCodecError('position', `the host sent position ${position} where ${expected} was next; resumed again from ${this.#resume.received}`)
    this.#emit('error', { error })
    // (A page may close with 1000 or 3000–4999 only.)
    if (socket) socket.close(1000, 'a position skipped ahead')
    else this.#fallback?.stream?.abort(error)
  }

  /**
   * A new socket's greeting: the fallback stream stops (the socket replays what it had not
   * delivered), what the host has not processed is sent again in order, then new messages.
   */
  #resumeOn (socket, greeting) {
    this.#fallback?.abort.abort()
    if (this.#socketAsking === socket) this.#socketAsking = null
    this.#resume.resend(greeting)
    this.#resumeReady = true
    this.#sendUnsent()
  }

  #dispatch (message) {
    const token = message.headers.find(([name]) => name === 'token')?.[1]
    // A relay (the host's `from`, no `route`: every reply has one) is another client's message,
    // whatever token it carries: tokens are predictable, and one was taken for a request's reply.
    const relayed = message.options.from !== undefined && message.options.route === undefined
    if (token !== undefined && !relayed) {
      const waiter = this.#pending.get(token)
      if (waiter) return waiter.reply(message)
      // Kept, not deleted: a request cut off by the chunk queue may be answered more than once.
      if (this.#ignored.has(token)) return
    }
    this.#handOn(null, message)
    this.#emit('message', { data: message })
  }

  /**
   * To the receive handler. What it throws is an `error` event and costs only this message:
   * thrown through the fallback stream's reader it would drop the rest of the stream.
   */
  #handOn (error, message) {
    try {
      this.#receive?.(error, message)
    } catch (thrown) {
      this.#emit('error', { error: thrown })
    }
  }

  /**
   * Acknowledges received host positions every 32 messages, or 200 ms after the first owed.
   * A host that reads nothing while it sends got one per 32 messages, each kept by the socket
   * without bound: while the socket holds unsent bytes, the acknowledgement waits (checked every
   * 200 ms) and goes out once, saying everything received meanwhile.
   */
  #acknowledgeWhenDue () {
    const due = this.#resume.ackDue()
    if (due === 'now' && !this.#socketIsBehind()) return this.#sendAck()
    if (due !== 'no' && !this.#ackTimer) this.#ackTimer = setTimeout(() => this.#sendAck(), ResumeState.ACK_WITHIN_MS)
  }

  #socketIsBehind () {
    return (this.socket?.bufferedAmount ?? 0) > ResumeState.ACK_HOLD_BYTES
  }

  /**
   * A bare `ack` on the socket; while it is down the next connect's `resume=` says the same.
   * Not before the socket's greeting: owed on the last socket, the host would take it for a
   * position of the epoch the greeting may have just begun (a reset), and release positions of
   * it the client never read.
   */
  #sendAck () {
    clearTimeout(this.#ackTimer)
    this.#ackTimer = null
    if (!this.isOpen || !this.#resumeReady || this.#resume.ackDue() === 'no') return
    if (this.#socketIsBehind()) this.#ackTimer = setTimeout(() => this.#sendAck(), ResumeState.ACK_WITHIN_MS)
    else this.socket.send(this.#resume.ackFrame())
  }

  #emit (type, fields = {}) {
    this.dispatchEvent(Object.assign(new Event(type), fields))
  }

  /**
   * No more reconnects; closes the socket and the fallback stream, drops the handler, fails
   * pending requests. From then on `send` is false, `startFallback` starts nothing, and
   * `request`, `sendOrFallback`, `connect` and `reconnect` fail at once.
   */
  close () {
    this.shouldReconnect = false
    this.#closing.abort()
    Conduit.pool.delete(this)
    this.#receive = null
    this.#held = []
    this.#heldBytes = 0
    for (const { fail } of this.#pending.values()) fail(closedError())
    this.#fallback?.abort.abort()
    clearTimeout(this.#ackTimer)
    clearTimeout(this.#drainTimer)
    this.#socketAsking = null
    const socket = this.socket
    this.socket = null
    this.isActive = false
    if (socket) {
      socket.onclose = () => this.#emit('close', { code: 1000, reason: 'closed' })
      socket.close(1000)
    }
  }
}

export default Conduit
