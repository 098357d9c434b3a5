// Starts the built `conduit-test-host serve` (conduit plus the test handler kinds) for the
// JavaScript tests: the test config (echo, test.push, test.silent), a random shared key;
// resolves once the announce line is read.
import { spawn, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../../../', import.meta.url))

/** `$CONDUIT_BIN`, else the package's debug build. */
function binary () {
  if (process.env.CONDUIT_BIN) return process.env.CONDUIT_BIN
  return execFileSync('swift', ['build', '--show-bin-path'], { cwd: root, encoding: 'utf8' }).trim() + '/conduit-test-host'
}

/** `{ port, ipcPort, host, sharedKey, url(path), stop() }`; `env` overrides settings
 * (docs/configuration.md), e.g. `{ CONDUIT_CHUNK_QUEUE_BYTES: '200000' }`. */
export async function startHost ({ env = {} } = {}) {
  const sharedKey = randomBytes(12).toString('hex')
  const child = spawn(binary(), ['serve', '--config', `${root}Tests/js/conduit-test.yaml`], {
    env: { ...process.env, ...env, CONDUIT_SHARED_KEY: sharedKey },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  let timer
  const announce = await Promise.race([
    new Promise((resolve) => createInterface({ input: child.stdout }).once('line', resolve)),
    exited.then((code) => { throw new Error(`conduit serve exited (${code}) before announcing`) }),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error('conduit serve did not announce within 30 s')), 30000) })
  ]).finally(() => clearTimeout(timer))
  const endpoints = JSON.parse(announce)
  return {
    ...endpoints,
    sharedKey,
    url: (path) => `http://${endpoints.host}:${endpoints.ipcPort}${path}`,
    async stop () {
      child.kill('SIGTERM')
      await exited
    }
  }
}

/** The golden vectors, the same file the Swift codec tests read. */
export const vectorsPath = `${root}Tests/ConduitWireTests/Fixtures/framing.json`

/** The resume chaos scenario's sizes (the test command's run by default; the long run,
 * docs/resume.md, from the environment): `CONDUIT_CHAOS_PUSHES`, `…_REQUESTS`, `…_DATAGRAMS`, set as
 * globals of the same names where the scenario runs (Node, or the page in Chromium). A value that
 * is not a whole number of at least 1 stops the run, named: as NaN the scenario would send
 * nothing and pass. `CONDUIT_CHAOS_SCALE`: how many times the default run the largest of them
 * is, which the scenario's time limits grow by (fixed, a long run outlasted its driver). */
const chaosDefaults = { CONDUIT_CHAOS_PUSHES: 400, CONDUIT_CHAOS_REQUESTS: 120, CONDUIT_CHAOS_DATAGRAMS: 120 }
export const chaosSizes = Object.fromEntries(
  Object.entries(chaosDefaults).map(([name, fallback]) => {
    if (process.env[name] === undefined) return [name, fallback]
    const size = Number(process.env[name])
    if (!Number.isInteger(size) || size < 1) throw new Error(`${name}=${process.env[name]}: a whole number of at least 1 is needed`)
    return [name, size]
  }))
chaosSizes.CONDUIT_CHAOS_SCALE = Math.max(...Object.entries(chaosDefaults).map(([name, fallback]) => chaosSizes[name] / fallback))
