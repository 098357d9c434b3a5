import ArgumentParser

@main
struct Conduit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conduit",
        abstract: "A local WebSocket host that routes compact binary messages to handler modules.",
        subcommands: [Serve.self, Routes.self, Check.self, Status.self, Pause.self, Resume.self, Demo.self],
        defaultSubcommand: Serve.self
    )
}
