import ArgumentParser
import ConduitHost

/// `conduit routes`: the resolved route table, in match order.
struct Routes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the resolved route table.")

    @OptionGroup var configurationOptions: ConfigurationOptions

    func run() async throws {
        let configuration = try configurationOptions.load()
        try Check.validate(configuration)
        print("# \(configuration.source)")
        print("# exact routes first, then the longest prefix.* pattern")
        let ordered = configuration.routes.filter { !$0.route.hasSuffix(".*") }
            + configuration.routes.filter { $0.route.hasSuffix(".*") }.sorted { $0.route.count > $1.route.count }
        let width = (ordered.map(\.route.count).max() ?? 5) + 2
        for entry in ordered {
            print(entry.route.padding(toLength: width, withPad: " ", startingAt: 0) + entry.handler)
        }
    }
}

import Foundation
