// Echo round trip and throughput of the JavaScript client; self-contained (Chromium gets
// its source text). One client, 32-byte payloads, route `echo`.
//   round trip: `rounds` echoes one after another, each timed from send to reply;
//   throughput: `total` echoes with `window` in flight, messages/s = total / elapsed.
export async function measureEcho ({ module, rounds = 2000, total = 50000, window = 64, id = 'measure' }) {
  const { Conduit } = module
  const conduit = new Conduit({ id, connect: false })
  await conduit.connect()
  const payload = new Uint8Array(32)
  const waiting = []
  conduit.receive(() => waiting.shift()?.())
  const echo = () => new Promise((resolve) => {
    waiting.push(resolve)
    conduit.send({ route: 'echo' }, payload)
  })
  for (let i = 0; i < 500; i++) await echo() // warm-up
  const times = []
  for (let i = 0; i < rounds; i++) {
    const start = performance.now()
    await echo()
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  const start = performance.now()
  await new Promise((resolve) => {
    let sent = 0
    let received = 0
    conduit.receive(() => {
      if (++received === total) return resolve()
      if (sent < total) { sent++; conduit.send({ route: 'echo' }, payload) }
    })
    for (; sent < Math.min(window, total); sent++) conduit.send({ route: 'echo' }, payload)
  })
  const seconds = (performance.now() - start) / 1000
  conduit.close()
  return {
    medianMs: times[times.length >> 1],
    p99Ms: times[Math.floor(times.length * 0.99)],
    messagesPerSecond: Math.round(total / seconds)
  }
}
