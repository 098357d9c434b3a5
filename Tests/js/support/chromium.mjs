// Headless Chromium driven over the DevTools protocol with Node's built-ins only (Node 20:
// run with --experimental-websocket). Used by the browser tests and the measurements.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** One DevTools connection: commands answered by id, events awaited by name and session. */
class DevTools {
  #socket
  #serial = 0
  #pending = new Map()
  #waiters = []

  static async open (url) {
    const devtools = new DevTools()
    devtools.#socket = new WebSocket(url)
    await new Promise((resolve, reject) => {
      devtools.#socket.onopen = resolve
      devtools.#socket.onerror = () => reject(new Error(`can't reach DevTools at ${url}`))
    })
    devtools.#socket.onmessage = (event) => devtools.#dispatch(JSON.parse(event.data))
    return devtools
  }

  #dispatch (message) {
    if (message.id !== undefined) {
      const { resolve, reject } = this.#pending.get(message.id)
      this.#pending.delete(message.id)
      return message.error ? reject(new Error(`${message.error.message} (${message.error.code})`)) : resolve(message.result)
    }
    if (message.method === 'Runtime.consoleAPICalled') {
      process.stderr.write(`[chromium console] ${message.params.args.map((arg) => arg.value ?? arg.description).join(' ')}\n`)
    }
    this.#waiters = this.#waiters.filter((waiter) => !waiter(message))
  }

  send (method, params = {}, sessionId) {
    const id = ++this.#serial
    this.#socket.send(JSON.stringify({ id, method, params, sessionId }))
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }))
  }

  next (method, sessionId) {
    return new Promise((resolve) => this.#waiters.push((message) => {
      if (message.method !== method || message.sessionId !== sessionId) return false
      resolve(message.params)
      return true
    }))
  }

  close () { this.#socket.close() }
}

/** Starts Chromium; `open(url)` gives a page whose `evaluate(expression)` awaits the value. */
export async function launchChromium () {
  const profile = mkdtempSync(join(tmpdir(), 'conduit-chromium-'))
  const child = spawn(process.env.CHROMIUM ?? 'chromium', [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage',
    '--window-size=1360,900', '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  const endpoint = await new Promise((resolve, reject) => {
    let log = ''
    child.stderr.on('data', (chunk) => {
      log += chunk
      const match = log.match(/DevTools listening on (ws:\/\/\S+)/)
      if (match) resolve(match[1])
    })
    child.once('exit', (code) => reject(new Error(`chromium exited (${code}):\n${log}`)))
  })
  const devtools = await DevTools.open(endpoint)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    async open (url) {
      const { targetId } = await devtools.send('Target.createTarget', { url: 'about:blank' })
      const { sessionId } = await devtools.send('Target.attachToTarget', { targetId, flatten: true })
      await devtools.send('Page.enable', {}, sessionId)
      await devtools.send('Runtime.enable', {}, sessionId)
      const loaded = devtools.next('Page.loadEventFired', sessionId)
      await devtools.send('Page.navigate', { url }, sessionId)
      await loaded
      return {
        async evaluate (expression) {
          const { result, exceptionDetails } = await devtools.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId)
          if (exceptionDetails) throw new Error(`in Chromium: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`)
          return result.value
        },
        async screenshot () {
          const { data } = await devtools.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId)
          return Buffer.from(data, 'base64')
        }
      }
    },
    async close () {
      devtools.close()
      child.kill('SIGTERM')
      await exited
      // Its helper processes may still be writing for a moment: a profile that can't be removed
      // yet is left in /tmp (said, not failed: it is no part of what the tests check).
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 200 })
      } catch (error) {
        console.warn(`chromium: the profile ${profile} stays behind (${error.code})`)
      }
    }
  }
}

/**
 * An expression that imports the host's /conduit.js in the page and calls `fn` (a
 * self-contained function) with `{ module, ...args }`; `helpers` are other self-contained
 * functions made visible to it by name.
 */
export function callInPage (fn, args, sharedKey, helpers = []) {
  return `(async () => {
    const module = await import('/conduit.js?key=' + encodeURIComponent(${JSON.stringify(sharedKey)}));
    ${helpers.map((helper) => `const ${helper.name} = ${helper.toString()};`).join('\n')}
    return (${fn.toString()})({ module, ...${JSON.stringify(args)} });
  })()`
}
