import ConduitKit
import ConduitWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@Suite("Handler kit")
struct HandlerKitTests {
    /// Collects what a responder is asked to send.
    final class Recorder: Sendable {
        private let results = NIOLockedValueBox<[Result<Reply, ConduitError>]>([])
        var responder: Responder { Responder { result in self.results.withLockedValue { $0.append(result) } } }
        var all: [Result<Reply, ConduitError>] { results.withLockedValue { $0 } }
    }

    @Test("client ids: uint64 or 1–64 of [A-Za-z0-9._-]", arguments: [
        ("18446744073709551615", true), ("a.B_c-9", true), (String(repeating: "x", count: 64), true),
        ("", false), (String(repeating: "x", count: 65), false), ("a b", false), ("é", false), ("a/b", false),
    ])
    func clientIDs(text: String, valid: Bool) {
        #expect((ClientID(text) != nil) == valid)
    }

    @Test func anOperationIsWhatFollowsThePrefixAndNeverTraps() {
        #expect(RouteMount.operation(of: "udp.send", under: "udp.*") == "send")
        #expect(RouteMount.operation(of: "echo", under: "echo") == "")
        // Equal to `TASK.run` as Swift compares strings; the prefix's length ends inside the
        // KELVIN SIGN, which trapped: the rest of the bytes, the cut character replaced by one U+FFFD.
        #expect(RouteMount.operation(of: "TAS\u{212A}.run", under: "TASK.*") == "\u{FFFD}.run")
    }

    @Test func jsonRepliesAreWrappedInData() throws {
        let recorder = Recorder()
        recorder.responder.reply(json: ["a": 1])
        guard case .success(let reply) = try #require(recorder.all.first) else { Issue.record("no reply"); return }
        #expect(String(buffer: reply.payload) == #"{"data":{"a":1}}"#)
    }

    @Test func respondTurnsErrorsAndTimeoutsIntoErrorReplies() async throws {
        let (results, sink) = AsyncStream.makeStream(of: Result<Reply, ConduitError>.self)
        let responder = Responder { sink.yield($0) }
        responder.respond { throw ConduitError.forbidden("no") }
        responder.respond(timeout: .milliseconds(50)) {
            try await Task.sleep(for: .seconds(30))
            return Reply()
        }
        responder.respond { struct Odd: Error {}; throw Odd() }
        var kinds: Set<String> = []
        for await result in results.prefix(3) {
            if case .failure(let error) = result { kinds.insert(error.kind.name) }
        }
        #expect(kinds == ["ForbiddenError", "TimeoutError", "InternalError"])
    }

    @Test func wireErrorsMapToTheirConduitTypes() {
        #expect(ConduitError(converting: WireError(.payloadTooLarge, "x")).kind == .payloadTooLarge)
        #expect(ConduitError(converting: WireError(.truncated, "x")).kind == .badRequest)
        #expect(ConduitError(converting: CancellationError()).kind == .unavailable)
    }

}
