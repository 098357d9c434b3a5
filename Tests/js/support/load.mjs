// Load for the status page's tests and screenshot: a client echoing back to back.
import { Conduit } from '../../../Sources/ConduitCLI/Web/conduit.js'

/** One client echoing `size`-byte payloads back to back until `running()` says stop. */
export async function echoLoop (id, size, running) {
  const conduit = new Conduit({ id })
  await conduit.connect()
  const payload = new Uint8Array(size)
  while (running()) {
    // A request, not send-and-wait: a reply lost with a socket must not hang the loop.
    await conduit.request('echo', { payload, timeout: 5000 }).catch(() => {})
  }
  conduit.close()
}
