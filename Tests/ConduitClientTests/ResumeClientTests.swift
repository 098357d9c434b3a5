import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import Testing

/// The Swift client with `resume: true` (SPEC §9): numbered requests and pushes cross pauses
/// of the socket server (sockets closed, the port changed) and the fallback stream between,
/// and the application sees every push once and in order, every request dispatched once.
@Suite("Client: resume", .serialized, .timeLimit(.minutes(2)))
struct ResumeClientTests {
    static let yaml = TestHost.clientYAML + "  - route: tally\n    handler: test.tally\n"

    @Test func everyPushOnceInOrderAndEveryRequestOnceAcrossPauses() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let id = ClientID("resumer")!
            let conduit = host.client(id: "resumer", resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let pushes = 600
            let requests = 150
            let pusher = Task {
                for n in 1...pushes {
                    host.host.directory.push(numberedPush(n), to: id)
                    if n % 20 == 0 { try await Task.sleep(for: .milliseconds(5)) }
                }
            }
            let requester = Task {
                for n in 1...requests {
                    let reply = try await conduit.request(route: "tally", headers: ["n": "\(n)"], payload: ByteBuffer(string: "\(n)"))
                    #expect(reply.headers["n"] == "\(n)" && String(buffer: reply.payload) == "\(n)")
                }
            }
            let ipc = try #require(conduit.ipc)
            for _ in 0..<4 {
                try await Task.sleep(for: .milliseconds(40))
                try await ipc.stop()
                try await Task.sleep(for: .milliseconds(60))
                try await ipc.start()
            }
            try await pusher.value
            try await requester.value
            try await waitUntil(timeout: .seconds(30)) { recorder.messages.count >= pushes }
            try await Task.sleep(for: .milliseconds(300))
            let received = recorder.messages.map { $0.headers["n"] ?? "?" }
            #expect(received == (1...pushes).map { "\($0)" }, "every push once, in order")
            let counts = DispatchTally.counts(of: "resumer")
            #expect(counts.count == requests && counts.values.allSatisfy { $0 == 1 }, "every request dispatched once")
            #expect(recorder.messages.allSatisfy { $0.headers["pos"] == nil }, "positions stay inside the client")
            #expect(recorder.count { if case .resumeReset = $0 { true } else { false } } == 0)
            conduit.close()
        }
    }

    /// The chaos test, short (Swift side): the socket goes through a proxy that resets every
    /// connection at random moments, dropping what is in flight both ways.
    @Test func exactlyOnceThroughAProxyThatResetsConnections() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let proxy = try await ChaosProxy.start(targetPort: host.port)
            let id = ClientID("chaotic")!
            let conduit = Conduit(
                id: "chaotic", address: HostAddress(port: proxy.port, ipcPort: nil, sharedKey: host.sharedKey),
                backoff: Backoff(retries: 1000, initialDelay: .milliseconds(10), maxDelay: .milliseconds(100)), resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let pushes = Int(ProcessInfo.processInfo.environment["CONDUIT_CHAOS_PUSHES"] ?? "") ?? 2000
            let requests = Int(ProcessInfo.processInfo.environment["CONDUIT_CHAOS_REQUESTS"] ?? "") ?? 300
            // Pushes as a stream handler makes them: waiting while the id is congested, so the
            // id's bounded buffer never has to drop one (that loss is §3's, counted, not resume's).
            let directory = host.host.directory
            let pusher = Task {
                for n in 1...pushes {
                    if directory.isCongested(id) {
                        await withCheckedContinuation { (writable: CheckedContinuation<Void, Never>) in
                            directory.whenWritable(id) { writable.resume() }
                        }
                    }
                    directory.push(numberedPush(n), to: id)
                    if n % 50 == 0 { try await Task.sleep(for: .milliseconds(2)) }
                }
            }
            let requester = Task {
                for n in 1...requests {
                    let reply = try await conduit.request(route: "tally", headers: ["n": "\(n)"], timeout: .seconds(60))
                    #expect(reply.headers["n"] == "\(n)")
                }
            }
            let done = NIOLockedValueBox(false)
            Task {
                _ = try? await pusher.value
                _ = try? await requester.value
                done.withLockedValue { $0 = true }
            }
            var cuts = 0
            var worstRecovery = Duration.zero
            while !done.withLockedValue({ $0 }) {
                try await Task.sleep(for: .milliseconds(Int.random(in: 10...40)))
                let started = ContinuousClock.now
                guard proxy.cutAll() > 0 else { continue }
                cuts += 1
                // The client must have seen the cut before "open" means the new socket.
                try await recorder.waitFor(cuts) { $0.isClose }
                do { try await waitUntil(timeout: .seconds(20)) { conduit.isOpen } } catch { print("chaos: not open again; the host: \(host.client("chaotic") as Any)"); throw error }
                worstRecovery = max(worstRecovery, .now - started)
            }
            try await pusher.value
            do { try await requester.value } catch {
                print("chaos: a request failed; the client's last events: \(recorder.events.filter { if case .message = $0 { false } else { true } }.suffix(12)); the host's resume state: \(host.client("chaotic")?.resume as Any)")
                throw error
            }
            do { try await waitUntil(timeout: .seconds(30)) { recorder.messages.count >= pushes } } catch { print("chaos: \(recorder.messages.count) of \(pushes) pushes; the host: \(host.client("chaotic") as Any)"); throw error }
            try await Task.sleep(for: .milliseconds(300))
            let received = recorder.messages.map { $0.headers["n"] ?? "?" }
            let mismatch = zip(received, (1...pushes).map { "\($0)" }).enumerated().first { $0.element.0 != $0.element.1 }
            #expect(received == (1...pushes).map { "\($0)" }, "every push once, in order: \(received.count) received, first difference at \(mismatch.map { "\($0.offset): \($0.element.0) for \($0.element.1)" } ?? "none"); around it \(received[max(0, (mismatch?.offset ?? 0) - 3)..<min(received.count, (mismatch?.offset ?? 0) + 4)])")
            let counts = DispatchTally.counts(of: "chaotic")
            #expect(counts.count == requests && counts.values.allSatisfy { $0 == 1 }, "every request dispatched once")
            #expect(cuts >= 3)
            #expect(host.client("chaotic")?.dropped == 0, "no push dropped by the id's buffer")
            let snapshot = try #require(host.client("chaotic")?.resume)
            print("resume chaos (swift, proxy resets): \(pushes) pushes, \(requests) requests, \(cuts) resets; host replayed \(snapshot.replayed), dropped \(snapshot.duplicates) duplicate client messages, lost \(snapshot.lost); client dropped \(conduit.resumeDuplicates) duplicates; worst recovery \(worstRecovery)")
            conduit.close()
            try await proxy.stop()
        }
    }

    @Test func aResetIsReportedWhenTheHostForgotTheId() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let conduit = host.client(id: "forgotten", resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            _ = try await conduit.request(route: "echo")
            #expect(recorder.count { if case .resumeReset = $0 { true } else { false } } == 0, "a first connect is no reset")
            // A plain connection for the id replaces the client's and ends the id's resume state.
            let plain = try await host.connect(client: "forgotten")
            try await recorder.waitFor { $0.willReconnect == false }
            try await plain.close()
            try await conduit.reconnect()
            try await recorder.waitFor { if case .resumeReset = $0 { true } else { false } }
            let reply = try await conduit.request(route: "echo", payload: ByteBuffer(string: "after"))
            #expect(String(buffer: reply.payload) == "after")
            conduit.close()
        }
    }
}
