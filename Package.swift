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
        .executable(name: "conduit-fuzz", targets: ["conduit-fuzz"]),
        .library(name: "ConduitWire", targets: ["ConduitWire"]),
        .library(name: "ConduitKit", targets: ["ConduitKit"]),
        .library(name: "ConduitHost", targets: ["ConduitHost"]),
        .library(name: "ConduitEcho", targets: ["ConduitEcho"]),
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
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: settings,
            plugins: ["EmbedDefaultConfig"]
        ),
        .executableTarget(
            name: "conduit-embed-config",
            swiftSettings: settings
        ),
        .plugin(
            name: "EmbedDefaultConfig",
            capability: .buildTool(),
            dependencies: ["conduit-embed-config"]
        ),
        .target(
            name: "ConduitEcho",
            dependencies: ["ConduitKit"],
            path: "Sources/Handlers/Echo",
            swiftSettings: settings
        ),
        .executableTarget(
            name: "conduit",
            dependencies: [
                "ConduitHost",
                "ConduitClient",
                "ConduitKit",
                "ConduitEcho",
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
            swiftSettings: settings
        ),
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
            name: "ConduitClientTests",
            dependencies: [
                "ConduitClient", "ConduitHost", "ConduitKit", "ConduitWire", "ConduitEcho", "ConduitTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: settings
        ),
    ]
)
