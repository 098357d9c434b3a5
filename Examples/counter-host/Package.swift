// swift-tools-version: 6.2
import PackageDescription

// A handler module kept outside the host's repository: its own package depends on Conduit's
// and builds its own `counter-host` executable, the `conduit` command line with one more kind.
let package = Package(
    name: "counter-host",
    platforms: [.macOS(.v14)],
    dependencies: [
        // In your package: .package(url: "https://github.com/<you>/conduit", from: "…")
        .package(name: "conduit", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(
            name: "CounterModule",
            dependencies: [
                .product(name: "ConduitKit", package: "conduit"),
                .product(name: "ConduitWire", package: "conduit"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "counter-host",
            dependencies: [
                "CounterModule",
                .product(name: "ConduitCLI", package: "conduit"),
                .product(name: "ConduitHost", package: "conduit"),
            ]
        ),
        .testTarget(
            name: "CounterModuleTests",
            dependencies: [
                "CounterModule",
                .product(name: "ConduitHost", package: "conduit"),
                .product(name: "ConduitTesting", package: "conduit"),
                .product(name: "ConduitWire", package: "conduit"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
