// Measures the JavaScript client in Node and in headless Chromium against the same
// `conduit serve` (scripts/measure-js.sh). Prints one line per runtime.
import { startHost } from './support/host.mjs'
import { launchChromium, callInPage } from './support/chromium.mjs'
import { measureEcho } from './support/measure.mjs'
import * as module from '../../Sources/ConduitCLI/Web/conduit.js'

const options = { rounds: Number(process.env.ROUNDS ?? 2000), total: Number(process.env.TOTAL ?? 50000), window: Number(process.env.WINDOW ?? 64) }
const host = await startHost()
const chromium = await launchChromium()
try {
  Object.assign(module.Conduit, { host: host.host, ipcPort: host.ipcPort, sharedKey: host.sharedKey })
  const node = await measureEcho({ module, ...options, id: 'measure-node' })
  const page = await chromium.open(host.url(`/conduit.js?key=${host.sharedKey}`))
  const browser = await page.evaluate(callInPage(measureEcho, { ...options, id: 'measure-chromium' }, host.sharedKey))
  console.log(`echo, 32-byte payload, one client: ${options.rounds} sequential round trips; ${options.total} messages with ${options.window} in flight`)
  for (const [name, result] of [[`node ${process.version}`, node], ['chromium (headless)', browser]]) {
    console.log(`${name.padEnd(20)} median ${result.medianMs.toFixed(3)} ms  p99 ${result.p99Ms.toFixed(3)} ms  ${result.messagesPerSecond.toLocaleString('en')} messages/s`)
  }
} finally {
  await chromium.close()
  await host.stop()
}
