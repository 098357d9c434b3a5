import ConduitCLI
import ConduitHost
import ConduitTesting

// `conduit` with the test handler kinds too (`test.push`, `test.silent`): the host the
// JavaScript client's tests run against. Never shipped.
await ConduitCLI.main(catalog: .builtIn + .testHandlers)
