@testable import ConduitClient
import ConduitWire
import NIOCore
import Testing

/// The client's side of resume as a state machine, for what the host this repository ships
/// never does but SPEC §9 allows it: acknowledging on any message it sends.
@Suite("Client: resume state")
struct ClientResumeStateTests {
    /// A cancellation goes past a full window, but requests that time out while nothing is
    /// taken (the socket down, over IPC) must not grow it without end.
    @Test func cancellationsGoPastAFullWindowBy64KiBAtMost() {
        let resume = ClientResume()
        let payload = ByteBuffer(repeating: 1, count: 60_000)
        while resume.number(Message(headers: ["route": "fill"], payload: payload)) {}
        #expect(!resume.number(Message(headers: ["route": "more"])), "full")
        var cancels = 0
        while cancels < 1_000_000, resume.number(Message(headers: ["cancel": "token-\(cancels)"]), pastWindow: true) { cancels += 1 }
        #expect(cancels > 1000 && cancels < 65_536 / 10, "\(cancels) cancellations past the window")
    }

    @Test func anAckOnAnyMessageReleasesWhatItCoversAndStaysInside() throws {
        let resume = ClientResume()
        for n in 1...3 { #expect(resume.number(Message(headers: ["route": "r", "n": "\(n)"]))) }
        // Written on a socket (as the drain says): an acknowledgement covers only what went out.
        resume.sent(before: 4)
        guard case .deliver(let delivered) = resume.admit(Message(headers: ["route": "x", "pos": "1", "ack": "2"])) else {
            Issue.record("a numbered message is delivered")
            return
        }
        #expect(delivered.headers == ["route": "x"], "pos and ack are the connection's")
        let greeting = Message(headers: ["route": "conduit.resume", "epoch": "e", "resumed": "1", "replayed": "0", "lost": "0", "ack": "0"])
        let resent = resume.sentAgain(after: greeting)
        #expect(resent.map { $0.headers["n"] } == ["3"], "what the ack covered is not sent again")
        // A duplicate still carries its ack.
        guard case .consumed = resume.admit(Message(headers: ["route": "x", "pos": "1", "ack": "3"])) else {
            Issue.record("a duplicate is dropped")
            return
        }
        #expect(resume.sentAgain(after: greeting).isEmpty)
    }

    @Test func anAckThatIsNotADecimalPositionIsTakenAsAbsent() throws {
        let resume = ClientResume()
        for n in 1...2 { #expect(resume.number(Message(headers: ["route": "r", "n": "\(n)"]))) }
        // Written: else nothing could be acknowledged, whatever the value.
        resume.sent(before: 3)
        for ack in ["+2", " 2", "2 ", "-1", "x"] {
            _ = resume.admit(Message(headers: ["route": "x", "pos": "1", "ack": ack]))
        }
        let greeting = Message(headers: ["route": "conduit.resume", "epoch": "e", "resumed": "1", "replayed": "0", "lost": "0", "ack": "0"])
        #expect(resume.sentAgain(after: greeting).map { $0.headers["n"] } == ["1", "2"], "nothing was taken as acknowledged")
    }
}

extension ClientResumeStateTests {
    /// After a reset the client forgets what went out (the host may have run it). A message in
    /// parts whose first parts had gone out lost only those: its last parts were sent alone on
    /// the new socket, and the host dispatched them as the whole request, truncated. A message
    /// whose last part never went out was never dispatched: it is sent again whole.
    @Test func aResetForgetsWholeMessagesOnly() throws {
        let resume = ClientResume()
        #expect(resume.number(Message(headers: ["route": "r", "n": "1"])))
        #expect(resume.number(Message(headers: ["route": "r", "n": "2"], payload: ByteBuffer(repeating: 7, count: 3 * WireLimits.maxPayloadBytes))))
        // The first message and two of the second's three parts went out.
        resume.sent(before: 4)
        let reset = Message(headers: ["route": "conduit.resume", "reset": "true", "epoch": "new", "resumed": "0", "replayed": "0", "lost": "0", "ack": "0"])
        let again = resume.sentAgain(after: reset)
        #expect(again.map { $0.headers["pos"] } == ["2", "3", "4"], "the second message whole")
        #expect(again.allSatisfy { $0.headers["n"] == "2" })
    }
}

extension ClientResumeStateTests {
    /// The events stream and a socket that asked with the same `resume=N` both get a greeting
    /// counting the same lost positions: reported twice, the app was told of twice the loss.
    @Test func positionsLostAreReportedOnceWhenTwoGreetingsCountThem() throws {
        let resume = ClientResume()
        _ = resume.admit(Message(headers: ["route": "conduit.resume", "reset": "true", "epoch": "e", "resumed": "0", "replayed": "0", "lost": "0", "ack": "0"]))
        for position in 1...5 { _ = resume.admit(Message(headers: ["route": "x", "pos": "\(position)"])) }
        let greeting = Message(headers: ["route": "conduit.resume", "epoch": "e", "resumed": "5", "replayed": "0", "lost": "3", "ack": "0"])
        guard case .greeting(reset: false, lost: 3) = resume.admit(greeting) else {
            Issue.record("the first greeting reports positions 6-8 lost")
            return
        }
        _ = resume.admit(Message(headers: ["route": "x", "pos": "9"]))
        guard case .greeting(reset: false, lost: 0) = resume.admit(greeting) else {
            Issue.record("the same loss, counted again, is not reported again")
            return
        }
    }
}

extension ClientResumeStateTests {
    /// A message the client drops itself (past its joining limit) counts as received: left
    /// out, the acknowledgement stuck below it and a reconnect asked for it again.
    @Test func aMessageDroppedWholeIsReceivedAndAcknowledgedOnce() throws {
        let resume = ClientResume()
        _ = resume.admit(Message(headers: ["route": "x", "pos": "1"]))
        #expect(resume.admitDropped(lastPart: ["route": "big", "pos": "3"]))
        #expect(resume.stateForConnect()?.query.first?.1 == "3", "a reconnect asks for what follows it")
        guard case .now(let ack) = resume.dueAck(force: true, socketTakesMore: true) else {
            Issue.record("its position is acknowledged")
            return
        }
        #expect(ack.headers[ResumeHeader.ack] == "3")
        #expect(!resume.admitDropped(lastPart: ["route": "big", "pos": "3"]), "a copy is a duplicate")
        #expect(resume.duplicates == 1)
    }

    /// Its error is told once: a copy (the fallback stream's and the socket's, asked from the
    /// same position) is a duplicate, dropped unseen.
    @Test func aDroppedMessageAndItsCopyAreOneError() async throws {
        let conduit = Conduit(id: "dropped", address: HostAddress(port: 1, ipcPort: nil, sharedKey: "k"), autoReconnect: false, resume: true)
        let recorder = Recorder(conduit)
        let error = ConduitClientError(.protocolError, "too big")
        conduit.deliver(.dropped(lastPart: ["route": "big", "pos": "1"], error))
        conduit.deliver(.dropped(lastPart: ["route": "big", "pos": "1"], error))
        conduit.deliver(.message(Message(headers: ["route": "after", "pos": "2"])))
        try await recorder.waitFor { if case .message = $0 { true } else { false } }
        #expect(recorder.count { if case .error = $0 { true } else { false } } == 1)
        #expect(recorder.messages.map(\.headers.route) == ["after"])
        #expect(conduit.resumeDuplicates == 1)
        conduit.close()
    }
}

extension ClientResume {
    /// Everything a new socket with this greeting is sent again.
    func sentAgain(after greeting: Message) -> [Message] {
        unsent(from: firstToSend(after: greeting), maxCount: .max, maxBytes: .max).messages
    }
}
