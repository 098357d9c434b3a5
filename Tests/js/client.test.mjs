// The JavaScript client in Node against a real `conduit serve` (run: scripts/test-js.sh,
// or node --experimental-websocket --test Tests/js/).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { startHost, vectorsPath, root } from './support/host.mjs'
import { scenarios } from './support/scenarios.mjs'
import * as module from '../../Sources/ConduitCLI/Web/conduit.js'

const { Conduit } = module
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
