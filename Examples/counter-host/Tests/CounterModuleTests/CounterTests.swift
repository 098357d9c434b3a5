import ConduitHost
import ConduitTesting
import ConduitWire
import CounterModule
import NIOCore
import Testing

@Suite("Counter module over a real socket")
struct CounterTests {
    static let catalog = HandlerCatalog([CounterHandler.kind])
    static let yaml = "routes:\n  - route: counter.*\n    handler: counter\n  - route: score.*\n    handler: counter\n"

    @Test func countsPerClientAndPerMountWithAPushEachTime() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: Self.catalog) { host in
            let client = try await host.connect(client: "c1")
            let added = try await client.request(Message(headers: ["route": "counter.add", "token": "1", "by": "5"]))
            #expect(String(buffer: added.payload) == #"{"data":5}"#)
            #expect(try await client.nextMessage(route: "counter.changed").headers["count"] == "5")
            let score = try await client.request(Message(headers: ["route": "score.add", "token": "2"]))
            #expect(String(buffer: score.payload) == #"{"data":1}"#, "another mount, another instance")
            #expect(try await client.nextMessage(route: "score.changed").headers["count"] == "1")
            let other = try await host.connect(client: "c2")
            let fresh = try await other.request(Message(headers: ["route": "counter.get", "token": "3"]))
            #expect(String(buffer: fresh.payload) == #"{"data":0}"#, "another client, another count")
        }
    }
}
