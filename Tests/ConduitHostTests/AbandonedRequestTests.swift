import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// A handler that takes a request's place (`holdWhileRunning`, `respondWhenDone`) and lets go
/// of its callback without calling it gave back neither the place nor the request's bytes of
/// the host-wide budget, for good: a few large requests filled the incoming half for every
/// client. The place is given back when the callback goes, and a request left without its
/// answer is answered `InternalError`, not left to its caller's timeout.
@Suite("Requests a handler let go of", .serialized, .timeLimit(.minutes(1)))
struct AbandonedRequestTests {
    static let yaml = "routes:\n  - route: abandoning\n    handler: abandoning\n"

    @Test func aForgottenEndGivesBackTheRequestsBudgetBytes() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "forgetful")
            for _ in 0..<4 {
                let reply = try await client.request(Message(headers: ["route": "abandoning", "mode": "hold"], payload: ByteBuffer(repeating: 1, count: 30_000)))
                #expect(reply.payload == ByteBuffer(string: "{\"data\":\"held\"}"))
            }
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
            try await client.close()
        }
    }

    @Test func aForgottenFinishIsAnsweredInternalError() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "unfinished")
            let reply = try await client.request(Message(headers: ["route": "abandoning", "mode": "finish"], payload: ByteBuffer(string: "x")))
            #expect(reply.headers["error"] == "InternalError")
            #expect(String(buffer: reply.payload).contains("without answering"), "\(String(buffer: reply.payload))")
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
            try await client.close()
        }
    }
}
