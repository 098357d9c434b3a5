// Starts a host, puts load on it (echo clients, pushes to an id that is down, pushes to the
// page), opens the status page in headless Chromium and saves a screenshot.
// Usage: node --experimental-websocket scripts/js/status-screenshot.mjs OUTPUT.png
import { writeFileSync } from 'node:fs'
import { startHost } from '../../Tests/js/support/host.mjs'
import { launchChromium } from '../../Tests/js/support/chromium.mjs'
import { echoLoop } from '../../Tests/js/support/load.mjs'
import { Conduit } from '../../Sources/ConduitCLI/Web/conduit.js'

const output = process.argv[2] ?? 'docs/status-page.png'
const host = await startHost()
Object.assign(Conduit, { host: host.host, ipcPort: host.ipcPort, sharedKey: host.sharedKey })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
let running = true

const chromium = await launchChromium()
try {
  const loops = [...Array(6)].map((_, n) => echoLoop(`bench-${n + 1}`, 64 << n, () => running))
  // An id that connected once and went away: its pushes are buffered, the oldest dropped.
  const away = new Conduit({ id: 'away-7' })
  await away.connect()
  away.close()
  await Conduit.ipc('test.push', { headers: { to: 'away-7', count: 4200 }, body: 'datagram' })
  const page = await chromium.open(host.url(`/?key=${host.sharedKey}&id=status-page`))
  for (let n = 1; n <= 5; n++) {
    await Conduit.ipc('test.push', { headers: { to: 'status-page' }, body: `datagram ${n}` })
    await sleep(500)
  }
  await sleep(8000)  // enough points for the charts to show a line
  writeFileSync(output, await page.screenshot())
  console.log(`wrote ${output}`)
  running = false
  await Promise.all(loops)
} finally {
  await chromium.close()
  await host.stop()
}
