@testable import ConduitNATS
import NIOCore
import Testing

/// What the client reads from a server, including a hostile or broken one: every line and
/// message is bounded and a malformed one is an error, never a crash or unbounded buffering.
struct ServerOperationDecoderTests {
    private func decode(_ text: String, maxLine: Int = 1024) throws -> [ServerOperation] {
        var decoder = ServerOperationDecoder(maxControlLineBytes: maxLine)
        var buffer = ByteBuffer(string: text)
        var operations: [ServerOperation] = []
        while let operation = try decoder.next(from: &buffer) { operations.append(operation) }
        return operations
    }

    @Test func messagesWithAndWithoutHeadersAndReplySubjects() throws {
        let operations = try decode(
            "MSG a.b 3 5\r\nhello\r\nMSG a.b 3 _INBOX.x 2\r\nhi\r\n"
                + "HMSG c 4 _INBOX.y 23 25\r\nNATS/1.0\r\nk: v\r\nx:y\r\n\r\nok\r\nHMSG _INBOX.z 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")
        #expect(operations.count == 4)
        guard case .message(let plain, let sid) = operations[0], case .message(let reply, _) = operations[1],
              case .message(let headed, _) = operations[2], case .message(let status, _) = operations[3]
        else { Issue.record("not four messages"); return }
        #expect(sid == 3 && plain.subject == "a.b" && plain.replyTo == nil && String(buffer: plain.payload) == "hello")
        #expect(reply.replyTo == "_INBOX.x" && String(buffer: reply.payload) == "hi")
        #expect(headed.headers["k"] == "v" && headed.headers["x"] == "y" && String(buffer: headed.payload) == "ok")
        #expect(status.status == 503 && status.payload.readableBytes == 0)
    }

    @Test func aMessageSplitAcrossReadsWaitsForItsEnd() throws {
        var decoder = ServerOperationDecoder(maxControlLineBytes: 1024)
        var buffer = ByteBuffer(string: "MSG a 1 10\r\n01234")
        #expect(try decoder.next(from: &buffer) == nil)
        buffer.writeString("56789\r\nPING\r\n")
        guard case .message(let message, _)? = try decoder.next(from: &buffer) else { Issue.record("no message"); return }
        #expect(String(buffer: message.payload) == "0123456789")
        guard case .ping? = try decoder.next(from: &buffer) else { Issue.record("no ping"); return }
    }

    @Test func hostileInputIsAnErrorNotABuffer() throws {
        // A line that never ends.
        #expect(throws: NATSError.self) { try decode(String(repeating: "x", count: 2000), maxLine: 1024) }
        // A declared size beyond any max_payload.
        #expect(throws: NATSError.self) { try decode("MSG a 1 999999999999\r\n") }
        // Before INFO, NATS's default max_payload (1 MiB) bounds a message: 64 MiB did, and a
        // server that sent a part of 59 MB before its INFO had the host hold it, per connection.
        #expect(throws: NATSError.self) { try decode("MSG a 1 \(2 << 20)\r\n") }
        for bad in ["MSG a b 5\r\nhello\r\n", "MSG a 1\r\n", "HMSG a 1 9 5\r\nhello\r\n",
                    "INFO nope\r\n", "BOGUS\r\n", "\r\n"] {
            #expect(throws: NATSError.self, "\(bad.debugDescription)") { try decode(bad) }
        }
    }

    /// A message's byte count that is off (a broken server) was taken on trust: the two bytes
    /// after the payload were skipped unchecked, and the next operation read from the wrong
    /// place. They must be CRLF.
    @Test func aMessageNotEndedByCRLFIsAProtocolViolation() throws {
        for bad in ["MSG a 1 3\r\nabcXXPING\r\n", "HMSG a 1 12 15\r\nNATS/1.0\r\n\r\nabc\nxPING\r\n"] {
            #expect(throws: NATSError.self, "\(bad.debugDescription)") { try decode(bad) }
        }
    }

    /// A message framed right whose header block can't be read (a publisher's doing: the server
    /// does not check it) was a protocol violation that closed the connection, failing every
    /// request in flight on it. It alone is dropped now, and what follows is read.
    @Test func aMessageWhoseHeadersCanNotBeReadIsDroppedAlone() throws {
        for block in ["NATS/1.0\r\nx\r\n\r\n", "HTTP/1.1\r\n\r\n", "hello"] {
            let bytes = block.utf8.count
            let operations = try decode("HMSG conduit.push.alice 7 \(bytes) \(bytes + 2)\r\n\(block)hi\r\nPING\r\n")
            guard operations.count == 2, case .malformed(let subject, let sid, _) = operations[0], case .ping = operations[1] else {
                Issue.record("\(block.debugDescription): \(operations)")
                continue
            }
            #expect(subject == "conduit.push.alice" && sid == 7)
        }
    }

    @Test func infoAndErrors() throws {
        let operations = try decode("INFO {\"server_id\":\"s\",\"max_payload\":4096,\"headers\":true}\r\n-ERR 'Authorization Violation'\r\n+OK\r\nPONG\r\n")
        guard case .info(let info) = operations[0], case .error(let text) = operations[1] else { Issue.record("\(operations)"); return }
        #expect(info.maxPayload == 4096 && info.headers && info.serverID == "s")
        #expect(text == "Authorization Violation")
    }
}
