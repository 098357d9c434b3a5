import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// Reads a client's pushes from the IPC fallback stream (`/internal.conduit.events?id=`) while
/// its socket is down, joining `more=true` parts. The host ends the stream when a socket for
/// the id connects, having written exactly what the socket won't get; the receiver then stops
/// and calls `finished`, so the client can hand on what the new socket brought meanwhile.
final class FallbackReceiver: Sendable {
    private struct State {
        var stopping = false
        var pause: Task<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    /// Starts reading; `deliver` gets each message (or one dropped) in order, and says false
    /// when the stream must be given up (resume: a position skipped ahead; the next is asked
    /// after a pause that grows, as after a failure), `failure` what
    /// does not decode (as on the socket: reported, and the stream read on), `streamEnded` is
    /// awaited after each stream (before the next is asked for), `finished` called once at the end.
    /// `query`: resume's parameters, asked anew for every stream (it may wait, or throw to
    /// skip this stream).
    init(
        endpoint: IPCEndpoint, id: String, query: @escaping @Sendable () async throws -> [(String, String)],
        deliver: @escaping @Sendable (Arrival) -> Bool,
        failure: @escaping @Sendable (ConduitClientError) -> Void, streamEnded: @escaping @Sendable () async -> Void,
        finished: @escaping @Sendable () -> Void
    ) {
        let started = Task { [state] in
            var attempt = 0
            while !state.withLockedValue({ $0.stopping }), !Task.isCancelled {
                // A message past the joining limit is dropped (and reported) as on the socket: thrown,
                // it ended the stream, and the next one, asked from the same position, brought it again.
                var joiner = PartJoiner()
                var givenUp = false
                do {
                    try await endpoint.frames(for: id, query: await query()) { frame in
                        switch frame {
                        case .success(let part):
                            if let arrival = joiner.add(part), !deliver(arrival) {
                                givenUp = true
                                return false
                            }
                        case .failure(let error):
                            if let reported = joiner.undecodable(.undecodable(error)) { failure(reported) }
                        }
                        return true
                    }
                    attempt = givenUp ? attempt + 1 : 0
                } catch {
                    // Refused (the host still counts the old socket as open) or IPC unreachable.
                    attempt += 1
                }
                await streamEnded()
                await Self.pause(attempt: attempt, state: state)
            }
            finished()
        }
        task.withLockedValue { $0 = started }
    }

    /// The socket is back: stop once the current stream ends (the host ends it now), or at once
    /// when no stream is open.
    func socketIsBack() {
        let pause = state.withLockedValue { state in
            state.stopping = true
            return state.pause
        }
        pause?.cancel()
    }

    /// The socket went down again before the receiver stopped: keep reading.
    func socketIsDown() {
        state.withLockedValue { $0.stopping = false }
    }

    /// `close()`: stop now, whatever is in flight.
    func cancel() {
        socketIsBack()
        task.withLockedValue { $0 }?.cancel()
    }

    /// Waits before the next try (100 ms doubling to 2 s); `socketIsBack` cuts it short.
    private static func pause(attempt: Int, state: NIOLockedValueBox<State>) async {
        let delay = min(Duration.milliseconds(100) * (1 << min(attempt, 5)), .seconds(2))
        let pause = Task { _ = try? await Task.sleep(for: delay) }
        let stopping = state.withLockedValue { state in
            state.pause = pause
            return state.stopping
        }
        if stopping { pause.cancel() }
        await pause.value
    }
}
