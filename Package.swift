// swift-tools-version: 6.2
import PackageDescription

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

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
        .library(name: "ConduitClient", targets: ["ConduitClient"]),
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
    ],
    targets: [
        // The wire codec: messages, ordered headers, limits, chunk assembly. NIOCore only.
        .target(
            name: "ConduitWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: settings
        ),
        // What a handler author sees: the handler protocol, requests, responders, errors.
        .target(
            name: "ConduitKit",
            dependencies: [
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        // The server: WebSocket data plane, sessions, push buffers, dispatcher, registry.
        .target(
            name: "ConduitHost",
            dependencies: [
                "ConduitWire",
                "ConduitKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
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
        .target(
            name: "ConduitEcho",
            dependencies: ["ConduitKit"],
            path: "Sources/Handlers/Echo",
            swiftSettings: settings
        ),
        .target(
            name: "ConduitUDP",
            dependencies: [
                "ConduitKit",
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Handlers/UDP",
            swiftSettings: settings
        ),
        // `tls.*`: a TLS client bridge and a local TLS echo service (SwiftNIO SSL).
        .target(
            name: "ConduitTLS",
            dependencies: [
                "ConduitKit",
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Handlers/TLS",
            swiftSettings: settings
        ),
        // `ai.*`: token streams from a built-in generator or an OpenAI-compatible endpoint.
        .target(
            name: "ConduitAIStream",
            dependencies: [
                "ConduitKit",
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Sources/Handlers/AIStream",
            swiftSettings: settings
        ),
        // `process`: a handler run as a child process, messages over its stdin/stdout.
        .target(
            name: "ConduitProcess",
            dependencies: [
                "ConduitKit",
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Handlers/Process",
            swiftSettings: settings
        ),
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
                // new-handler: handler modules above this line
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
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
            dependencies: ["ConduitWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: settings
        ),
        // The Swift client (SPEC §7): the seed's Conduit API over SwiftNIO, with IPC fallback.
        .target(
            name: "ConduitClient",
            dependencies: [
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
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
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitHostTests",
            dependencies: [
                "ConduitHost",
                "ConduitKit",
                "ConduitWire",
                "ConduitEcho",
                "ConduitTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitKitTests",
            dependencies: [
                "ConduitKit",
                "ConduitWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitWireTests",
            dependencies: ["ConduitWire"],
            resources: [.copy("Fixtures")],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitUDPTests",
            dependencies: [
                "ConduitUDP", "ConduitKit", "ConduitWire", "ConduitHost", "ConduitTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitIPCTests",
            dependencies: [
                "ConduitHost", "ConduitKit", "ConduitWire", "ConduitEcho", "ConduitTesting", "ConduitClient",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitProcessTests",
            dependencies: [
                "ConduitHost", "ConduitKit", "ConduitWire", "ConduitEcho", "ConduitProcess", "ConduitTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitTLSTests",
            dependencies: [
                "ConduitHost", "ConduitKit", "ConduitWire", "ConduitTLS", "ConduitTesting", "ConduitClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitAIStreamTests",
            dependencies: [
                "ConduitAIStream", "ConduitHost", "ConduitKit", "ConduitWire", "ConduitTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ConduitClientTests",
            dependencies: [
                "ConduitClient", "ConduitHost", "ConduitKit", "ConduitWire", "ConduitEcho", "ConduitTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
        // new-handler: targets above this line
    ]
)
