import ConduitCLI

await ConduitCLI.main(catalog: .builtIn)
