// The client scenarios in headless Chromium against a real `conduit serve`: the page is the
// host's own /conduit.js (so IPC calls are same-origin), the module is imported from there.
// Exits 1 if any scenario fails. Run by scripts/test-js.sh. `CONDUIT_SCENARIOS`: only the
// scenarios whose names contain it; the chaos scenario's sizes as in Node (`chaosSizes`).
import { readFileSync } from 'node:fs'
import { startHost, vectorsPath, chaosSizes } from './support/host.mjs'
import { launchChromium, callInPage } from './support/chromium.mjs'
import { scenarios, runAll } from './support/scenarios.mjs'

const host = await startHost()
const chromium = await launchChromium()
let failed = 0
try {
  const page = await chromium.open(host.url(`/conduit.js?key=${host.sharedKey}`))
  await page.evaluate(`Object.assign(globalThis, ${JSON.stringify(chaosSizes)}); true`)
  const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8'))
  const run = ({ module, vectors, prefix, only }) =>
    runAll(Object.fromEntries(Object.entries(scenarios({ module, vectors, prefix })).filter(([name]) => name.includes(only))))
  const only = process.env.CONDUIT_SCENARIOS ?? ''
  const results = await page.evaluate(callInPage(run, { vectors, prefix: 'chromium', only }, host.sharedKey, [scenarios, runAll]))
  for (const result of results) {
    console.log(`${result.ok ? 'ok    ' : 'FAILED'} chromium: ${result.name} (${result.ms} ms)`)
    if (!result.ok) {
      failed++
      console.log(`       ${result.error.replaceAll('\n', '\n       ')}`)
    }
  }
  console.log(`chromium: ${results.length - failed} passed, ${failed} failed`)
  if (results.length === 0) {
    console.log(`chromium: no scenario ran${only ? ` (none is named with '${only}')` : ''}`)
    failed = 1
  }
} finally {
  await chromium.close()
  await host.stop()
}
process.exit(failed ? 1 : 0)
