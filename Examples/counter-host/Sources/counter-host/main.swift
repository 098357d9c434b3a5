import ConduitCLI
import ConduitHost
import CounterModule

// `counter-host serve --config counter.yaml`: Conduit's command line, knowing one more kind.
await ConduitCLI.main(catalog: .builtIn + [CounterHandler.kind])
