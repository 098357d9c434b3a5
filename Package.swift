// swift-tools-version: 6.2
import PackageDescription

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

func nio(_ product: String) -> Target.Dependency { .product(name: product, package: "swift-nio") }
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

/// A handler module under Sources/Handlers: what every module imports, plus its own needs.
func handlerModule(_ name: String, path: String, _ extra: [Target.Dependency] = []) -> Target {
    .target(
        name: name, dependencies: ["ConduitKit", "ConduitWire", nio("NIOCore"), logging] + extra,
        path: "Sources/Handlers/\(path)", swiftSettings: settings)
}

/// A test target over real sockets: a host, its test clients and the codec, plus its own needs.
func socketTests(_ name: String, _ extra: [Target.Dependency], exclude: [String] = []) -> Target {
    .testTarget(
        name: name, dependencies: ["ConduitHost", "ConduitKit", "ConduitWire", "ConduitTesting", nio("NIOCore")] + extra,
        exclude: exclude, swiftSettings: settings)
}

let package = Package(
    name: "conduit",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "conduit", targets: ["conduit"]),
        .library(name: "ConduitCLI", targets: ["ConduitCLI"]),
        .executable(name: "conduit-fuzz", targets: ["conduit-fuzz"]),
        .library(name: "ConduitWire", targets: ["ConduitWire"]),
        .library(name: "ConduitKit", targets: ["ConduitKit"]),
        .library(name: "ConduitHost", targets: ["ConduitHost"]),
        .library(name: "ConduitEcho", targets: ["ConduitEcho"]),
        .library(name: "ConduitUDP", targets: ["ConduitUDP"]),
        .library(name: "ConduitTesting", targets: ["ConduitTesting"]),
        .library(name: "ConduitKitTesting", targets: ["ConduitKitTesting"]),
        .library(name: "ConduitClient", targets: ["ConduitClient"]),
        .library(name: "ConduitNATS", targets: ["ConduitNATS"]),
        .executable(name: "conduit-nats-worker", targets: ["conduit-nats-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The wire codec: messages, ordered headers, limits, chunk assembly. NIOCore only.
        .target(
            name: "ConduitWire",
            dependencies: [nio("NIOCore")],
            swiftSettings: settings
        ),
        // What a handler author sees: the handler protocol, requests, responders, errors.
        .target(
            name: "ConduitKit",
            dependencies: [
                "ConduitWire",
                nio("NIOCore"),
                logging,
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: settings
        ),
        // The server: WebSocket data plane, sessions, push buffers, dispatcher, registry.
        .target(
            name: "ConduitHost",
            dependencies: [
                "ConduitWire",
                "ConduitKit",
                nio("NIOCore"),
                nio("NIOPosix"),
                nio("NIOHTTP1"),
                nio("NIOWebSocket"),
                logging,
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
                nio("NIOConcurrencyHelpers"),
            ],
            swiftSettings: settings,
            plugins: ["EmbedFiles"]
        ),
        .executableTarget(
            name: "conduit-embed-files",
            swiftSettings: settings
        ),
        .plugin(
            name: "EmbedFiles",
            capability: .buildTool(),
            dependencies: ["conduit-embed-files"]
        ),
        // `swift package --allow-writing-to-package-directory new-handler <Name> [--route prefix.*]`
        .plugin(
            name: "NewHandler",
            capability: .command(
                intent: .custom(verb: "new-handler", description: "Create a handler module: source, test, targets, catalog line, route"),
                permissions: [.writeToPackageDirectory(reason: "It adds the module's files and registers it in Package.swift, the handler catalog and config/conduit.yaml")]
            )
        ),
        // `swift package lint-config [FILE…]`: `conduit check` on every config/**/*.yaml.
        .plugin(
            name: "LintConfig",
            capability: .command(intent: .custom(verb: "lint-config", description: "Validate config/**/*.yaml against the registered handler kinds"))
        ),
        handlerModule("ConduitEcho", path: "Echo"),
        handlerModule("ConduitUDP", path: "UDP", [nio("NIOPosix"), nio("NIOConcurrencyHelpers"), .product(name: "CoreMetrics", package: "swift-metrics")]),
        // `tls.*`: a TLS client bridge and a local TLS echo service (SwiftNIO SSL).
        handlerModule("ConduitTLS", path: "TLS", [
            nio("NIOPosix"), nio("NIOConcurrencyHelpers"), nio("NIOTLS"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `ai.*`: token streams from a built-in generator or an OpenAI-compatible endpoint.
        handlerModule("ConduitAIStream", path: "AIStream", [
            nio("NIOHTTP1"), nio("NIOConcurrencyHelpers"), .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // `process`: a handler run as a child process, messages over its stdin/stdout.
        handlerModule("ConduitProcess", path: "Process", [
            nio("NIOPosix"), .product(name: "Subprocess", package: "swift-subprocess"), .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // `nats`: routes served by workers anywhere over NATS, and their pushes to clients.
        handlerModule("ConduitNATSHandler", path: "NATS", ["ConduitNATS", .product(name: "Metrics", package: "swift-metrics")]),
        // glibc's mallopt, which Swift's Glibc module does not export (conduit serve's heap thresholds).
        .target(name: "CMallocTuning"),
        // The command line as a library: `ConduitCLI.main(catalog:)`, so a package of one's own
        // builds a `conduit` that knows its handler kinds.
        .target(
            name: "ConduitCLI",
            dependencies: [
                "CMallocTuning",
                "ConduitHost",
                "ConduitClient",
                "ConduitKit",
                "ConduitEcho",
                "ConduitUDP",
                "ConduitTLS",
                "ConduitAIStream",
                "ConduitProcess",
                "ConduitNATSHandler",
                // new-handler: handler modules above this line
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                nio("NIOCore"),
                nio("NIOPosix"),
                nio("NIOHTTP1"),
            ],
            // The JavaScript client and the status page, compiled in by EmbedFiles.
            exclude: ["Web"],
            swiftSettings: settings,
            plugins: ["EmbedFiles"]
        ),
        .executableTarget(name: "conduit", dependencies: ["ConduitCLI"], swiftSettings: settings),
        // The JavaScript client's tests run against this: conduit plus the test handler kinds.
        .executableTarget(name: "conduit-test-host", dependencies: ["ConduitCLI", "ConduitHost", "ConduitTesting"], swiftSettings: settings),
        // libFuzzer target for the decoder and chunk reassembler (scripts/fuzz.sh); a plain build
        // replays a corpus through the same properties.
        .executableTarget(
            name: "conduit-fuzz",
            dependencies: ["ConduitWire", nio("NIOCore")],
            swiftSettings: settings
        ),
        // The Swift client (SPEC §7): the seed's Conduit API over SwiftNIO, with IPC fallback.
        .target(
            name: "ConduitClient",
            dependencies: [
                "ConduitWire",
                nio("NIOCore"),
                nio("NIOPosix"),
                nio("NIOHTTP1"),
                nio("NIOWebSocket"),
                nio("NIOConcurrencyHelpers"),
            ],
            swiftSettings: settings
        ),
        // A NATS client on SwiftNIO (text protocol, request/reply, queue groups, reconnect,
        // TLS). Free of Conduit concepts: it could be published on its own.
        .target(
            name: "ConduitNATS",
            dependencies: [nio("NIOCore"), nio("NIOPosix"), .product(name: "NIOSSL", package: "swift-nio-ssl")],
            swiftSettings: settings
        ),
        // The example Swift worker for `nats` routes (docs/nats.md).
        .executableTarget(
            name: "conduit-nats-worker",
            dependencies: [
                "ConduitNATS", "ConduitKit", nio("NIOCore"), nio("NIOPosix"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // Testing a handler without a host: requests in, replies and pushes recorded, a test clock.
        .target(
            name: "ConduitKitTesting",
            dependencies: ["ConduitKit", "ConduitWire", nio("NIOCore"), nio("NIOEmbedded"), logging],
            swiftSettings: settings
        ),
        // Test support: a real host on port 0 and real WebSocket / TCP clients.
        .target(
            name: "ConduitTesting",
            dependencies: [
                "ConduitHost",
                "ConduitClient",
                "ConduitKit",
                "ConduitWire",
                nio("NIOCore"),
                nio("NIOPosix"),
                nio("NIOHTTP1"),
                nio("NIOWebSocket"),
                nio("NIOConcurrencyHelpers"),
                logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        socketTests("ConduitHostTests", ["ConduitEcho", "ConduitClient", nio("NIOEmbedded"), nio("NIOHTTP1"), nio("NIOPosix"), nio("NIOWebSocket")]),
        .testTarget(
            name: "ConduitKitTests",
            dependencies: [
                "ConduitKit",
                "ConduitWire",
                nio("NIOCore"),
                nio("NIOPosix"),
                nio("NIOConcurrencyHelpers"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitKitTestingTests",
            dependencies: ["ConduitKitTesting", "ConduitKit", "ConduitWire", "ConduitEcho", nio("NIOCore")],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitWireTests",
            dependencies: ["ConduitWire", "ConduitTesting"],
            resources: [.copy("Fixtures")],
            swiftSettings: settings
        ),
        socketTests("ConduitUDPTests", ["ConduitUDP", "ConduitClient", nio("NIOPosix")]),
        socketTests("ConduitIPCTests", [
            "ConduitEcho", "ConduitClient", nio("NIOPosix"), nio("NIOHTTP1"), logging,
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        socketTests("ConduitProcessTests", ["ConduitEcho", "ConduitProcess", "ConduitClient", nio("NIOConcurrencyHelpers"), nio("NIOHTTP1"), logging], exclude: ["Fixtures"]),
        socketTests("ConduitTLSTests", [
            "ConduitTLS", "ConduitClient", nio("NIOHTTP1"), nio("NIOPosix"), nio("NIOTLS"), nio("NIOEmbedded"), logging,
            .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]),
        socketTests("ConduitAIStreamTests", ["ConduitAIStream", "ConduitClient", nio("NIOPosix"), nio("NIOHTTP1")]),
        socketTests("ConduitClientTests", ["ConduitClient", "ConduitEcho", "ConduitUDP", nio("NIOConcurrencyHelpers"), nio("NIOEmbedded"), nio("NIOWebSocket")]),
        // Against a real nats-server started by the tests (Debian package nats-server).
        socketTests("ConduitNATSTests", [
            "ConduitNATS", "ConduitNATSHandler", "ConduitClient", nio("NIOPosix"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // new-handler: targets above this line
    ]
)
