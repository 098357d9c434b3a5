import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// SPEC §8: a request is answered once, `CancelledError` when cancelled, "unless its reply was
/// already sent". A reply that had passed the cancelled check went out, and a cancel read in
/// the moment before the request's registration was removed found it still live and answered
/// `CancelledError` too: two answers for one token.
/// Three minutes: 2,000 pairs take 1.6 s alone, and took 63 s in a full run (two cores).
@Suite("A cancel racing the reply", .timeLimit(.minutes(3)))
struct CancelRaceTests {
    @Test func aRequestCancelledAsItIsAnsweredIsAnsweredOnce() async throws {
        try await TestHost.run(yaml: "routes:\n  - route: slow\n    handler: slow\n", catalog: .hostTests) { host in
            let client = try await host.connect(client: "racer")
            let count = 2_000
            for index in 0..<count {
                try await client.send(together: [
                    Message(headers: ["route": "slow", "mode": "quick", "token": "q\(index)"]),
                    Message(headers: ["cancel": "q\(index)"]),
                ])
            }
            // A last request without a cancel: answered after every answer above was sent.
            try await client.send(["route": "slow", "mode": "quick", "token": "last"])
            var answers: [String: Int] = [:]
            while true {
                let message = try await client.nextMessage()
                guard let token = message.headers["token"] else { continue }
                answers[token, default: 0] += 1
                if token == "last" { break }
            }
            // What the cancels' answers may still bring.
            while let late = try? await client.nextMessage(timeout: .milliseconds(500)) {
                if let token = late.headers["token"] { answers[token, default: 0] += 1 }
            }
            let twice = answers.filter { $0.value > 1 }
            #expect(twice.isEmpty, "\(twice.count) tokens answered more than once, e.g. \(twice.keys.sorted().prefix(5))")
            #expect(answers.count == count + 1, "every request answered")
        }
    }
}
