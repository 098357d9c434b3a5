import ConduitEcho
import ConduitKit
import ConduitKitTesting
import ConduitWire
import NIOCore
import Testing

/// A handler with timers, pushes, per-client state and a cancellable task: what the bench
/// must let a test drive without a host.
struct Reminder: ConduitHandler {
    let context: HandlerContext

    init(options: NoOptions, context: HandlerContext) {
        self.context = context
    }

    func handle(_ request: Request, responder: Responder) throws {
        switch request.operation {
        case "later":
            // Pushes `due` after `seconds` on the handler's loop, and replies at once.
            let seconds = Int64(try request.require("seconds")) ?? 0
            let client = request.client
            request.eventLoop.scheduleTask(in: .seconds(seconds)) {
                context.pushes.push(Message(headers: ["route": context.route("due")]), to: client)
            }
            responder.reply(json: "scheduled")
        case "wait":
            responder.respond { [pushes = context.pushes, client = request.client] in
                await pushes.writable(client)
                return Reply(headers: ["writable": "true"])
            }
        case "forever":
            responder.respond {
                try await Task.sleep(for: .seconds(3600))
                return nil
            }
        default:
            throw ConduitError.notFound("no operation '\(request.operation)'")
        }
    }
}

@Suite("Handler test bench (no host)")
struct HandlerTestBenchTests {
    @Test func repliesAndThrownErrorsAreRecordedByToken() async throws {
        let bench = try HandlerTestBench<EchoHandler>(options: NoOptions(), mount: "echo")
        let token = bench.send("", headers: ["x": "1"], payload: ByteBuffer(string: "hi"))
        let reply = try await bench.reply(to: token).get()
        #expect(String(buffer: reply.payload) == "hi")
        let reminder = try HandlerTestBench<Reminder>(options: NoOptions())
        guard case .failure(let error) = try await reminder.reply(to: reminder.send("nope")) else {
            Issue.record("expected an error reply"); return
        }
        #expect(error.kind == .notFound)
    }

    @Test func theTestClockRunsScheduledWorkOnlyWhenAdvanced() async throws {
        let bench = try HandlerTestBench<Reminder>(options: NoOptions(), mount: "remind.*")
        _ = try await bench.reply(to: bench.send("later", headers: ["seconds": "30"], from: "alice"))
        await bench.advance(by: .seconds(29))
        #expect(bench.pushes.messages(to: ClientID("alice")!).isEmpty)
        await bench.advance(by: .seconds(1))
        #expect(bench.pushes.messages(to: ClientID("alice")!).map { $0.headers.route } == ["remind.due"])
    }

    /// The bench's push sink refuses what the host would: a push without room for the headers
    /// the host adds on the way out.
    @Test func aPushTheHostWouldRefuseIsRefused() {
        let pushes = RecordingPushSink()
        let client = ClientID("alice")!
        let roomy = Message(headers: Headers((1..<WireLimits.maxHeaders).map { ("h\($0)", "v") }))
        let full = Message(headers: Headers((0..<WireLimits.maxHeaders).map { ("h\($0)", "v") }))
        #expect(pushes.push(roomy, to: client) == .sent)
        #expect(pushes.push(full, to: client) == .dropped(.unencodable))
        #expect(pushes.messages(to: client).count == 1)
    }

    /// Replies are what the client would receive: one with no room left for the host's fields
    /// is the host's `InternalError`, in the bench as in the host.
    @Test func aReplyTheHostWouldRefuseIsItsError() async throws {
        let bench = try HandlerTestBench<WideReplies>(options: NoOptions())
        let fits = try await bench.reply(to: bench.send("x", headers: ["count": "252"])).get()
        #expect(fits.headers.count == 252)
        guard case .failure(let error) = try await bench.reply(to: bench.send("x", headers: ["count": "253"])) else {
            Issue.record("expected the framing error"); return
        }
        #expect(error.kind == .internal && error.message.contains("framing limits"))
    }

    @Test func congestionHoldsAReplyUntilCleared() async throws {
        let bench = try HandlerTestBench<Reminder>(options: NoOptions())
        let client = ClientID("slow")!
        bench.pushes.setCongested(client, true)
        let token = bench.send("wait", from: "slow")
        try await Task.sleep(for: .milliseconds(50))
        #expect(bench.replies(to: token).isEmpty)
        bench.pushes.setCongested(client, false)
        #expect(try await bench.reply(to: token).get().headers["writable"] == "true")
    }

    @Test func cancellingARequestStopsItsTaskAndAnswersCancelledError() async throws {
        let bench = try HandlerTestBench<Reminder>(options: NoOptions())
        let token = bench.send("forever")
        #expect(bench.cancel(token))
        guard case .failure(let error) = try await bench.reply(to: token) else { Issue.record("no error"); return }
        #expect(error.kind == .cancelled)
        try await Task.sleep(for: .milliseconds(50))
        #expect(bench.replies(to: token).count == 1, "answered once")
        #expect(!bench.cancel("unknown"))
    }

    /// The host cancels what a handler's requests still run when it stops the handler (at
    /// shutdown, or when a reload removes its route); the bench left them running, unanswered,
    /// so a handler whose tasks ignored that passed here and hung in the host.
    @Test func stoppingTheBenchCancelsRunningRequestsAsTheHostDoes() async throws {
        let bench = try HandlerTestBench<Reminder>(options: NoOptions())
        let token = bench.send("forever")
        await bench.stop()
        guard case .failure = try await bench.reply(to: token, timeout: .seconds(5)) else { Issue.record("answered as if it had run to its end"); return }
    }

    /// A request answered from a task has the host's deadline (`limits.requestTimeoutSeconds`,
    /// 60 s) unless the handler names one: the bench applies it too.
    @Test func aTaskPastTheRequestTimeoutIsAnsweredTimeoutError() async throws {
        let bench = try HandlerTestBench<Reminder>(options: NoOptions(), requestTimeout: .milliseconds(100))
        // Waited for 60 s, not the bench's 10: its timer's task waited longer than that for a
        // thread in two full runs, every suite sharing the machine's two cores.
        guard case .failure(let error) = try await bench.reply(to: bench.send("forever"), timeout: .seconds(60)) else { Issue.record("no error"); return }
        #expect(error.kind == .timeout)
        await bench.stop()
    }
}

/// Replies with `count` (a header) headers of its own.
struct WideReplies: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        responder.reply(headers: Headers((0..<(Int(request.headers["count"] ?? "") ?? 0)).map { ("w\($0)", "v") }))
    }
}
