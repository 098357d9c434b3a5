// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for the Conduit host, kept out of the product's package: the load tool
// (`conduit-bench`), a bare SwiftNIO echo peer (`nio-echo`), measurements against a host in
// the same process (`conduit-measure`), and codec micro-benchmarks with allocation counts
// (`swift package benchmark`).
let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "conduit-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        // Named, so product references do not depend on the checkout folder name.
        .package(name: "conduit", path: "../"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "conduit-bench",
            dependencies: [
                .product(name: "ConduitWire", package: "conduit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: settings
        ),
        // `conduit-measure client|process|tls|ai`: a real host in this process (ConduitTesting's
        // TestHost) with the built-in handler kinds, one measurement per subcommand.
        .executableTarget(
            name: "conduit-measure",
            dependencies: ["ConduitCLI", "ConduitClient", "ConduitHost", "ConduitTesting", "ConduitWire"].map {
                .product(name: $0, package: "conduit")
            } + [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: settings
        ),
        benchmarkTarget("CodecBenchmarks", conduit: ["ConduitWire"]),
        benchmarkTarget("RoutedEchoBenchmarks", conduit: ["ConduitHost", "ConduitEcho", "ConduitTesting", "ConduitKit", "ConduitWire"]),
    ]
)

/// A `swift package benchmark` target in Benchmarks/NAME, using the named Conduit products.
func benchmarkTarget(_ name: String, conduit products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: products.map { .product(name: $0, package: "conduit") } + [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Benchmark", package: "benchmark"),
        ],
        path: "Benchmarks/\(name)",
        swiftSettings: settings,
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}
