import ArgumentParser
import ConduitKit
import ConduitNATS
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import UnixSignals

/// An example NATS worker for `nats` routes (docs/nats.md), the Swift twin of
/// handlers/nats_worker.py: it answers requests on a subject in a queue group and can push to
/// the client that asked. `route` ending `.upper`: the payload's ASCII letters upper-cased;
/// `.count`: how many requests this worker handled, as JSON; anything else: the payload
/// echoed. A request with `push: yes` first sends the client a `work.progress` push through
/// `conduit.push.<id>`.
@main
struct NATSWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conduit-nats-worker", abstract: "An example worker for Conduit's nats routes.")

    @Option(help: "The NATS server.") var url = "nats://127.0.0.1:4222"
    @Option(help: "The subject to serve (wildcards allowed).") var subject = "work.>"
    @Option(help: "The queue group workers of this subject share.") var queue = "workers"
    @Option(help: "This worker's name, sent back in the `worker` header.") var name = "swift-1"
    @Option(help: "PEM file of the CA that signed the NATS server's certificate (tls:// URLs).") var caFile: String?

    func run() async throws {
        var options = try NATSClientOptions(url: url, name: name)
        options.caFile = caFile
        let client = NATSClient(options: options, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        try await client.connect()
        let handled = Atomic<Int>(0)
        let worker = name
        _ = try client.subscribe(subject, queue: queue) { request in
            guard let replyTo = request.replyTo else { return }
            let count = handled.add(1, ordering: .relaxed).newValue
            if request.headers["push"] == "yes", let id = request.headers["conduit-client"] {
                let token = request.headers["token"] ?? ""
                try? client.publish("conduit.push.\(id)", headers: ["route": "work.progress", "worker": worker], payload: ByteBuffer(string: "working on \(token)"))
            }
            let route = request.headers["route"] ?? ""
            let payload: ByteBuffer = if route.hasSuffix(".upper") {
                Self.upperCased(request.payload)
            } else if route.hasSuffix(".count") {
                ByteBuffer(string: #"{"worker":"\#(worker)","handled":\#(count)}"#)
            } else {
                request.payload
            }
            do throws(NATSError) {
                try client.publish(replyTo, headers: ["worker": worker], payload: payload)
            } catch {
                // Unanswered, the client would wait out the route's whole timeout.
                let failure: ConduitError = if case .payloadTooLarge = error { .payloadTooLarge(error.description) } else { .internal(error.description) }
                try? client.publish(replyTo, headers: ["worker": worker, "error": failure.kind.name], payload: failure.payload)
            }
        }
        // The subscription is in place once the server has answered a PING sent after it.
        try await client.flush()
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
        await client.close()
    }

    /// ASCII letters upper-cased, every other byte as it was: binary payloads stay intact and
    /// the answer is never larger than the request (as the Python twin's `bytes.upper()`).
    static func upperCased(_ payload: ByteBuffer) -> ByteBuffer {
        ByteBuffer(bytes: payload.readableBytesView.map { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) ? $0 - 32 : $0 })
    }
}
