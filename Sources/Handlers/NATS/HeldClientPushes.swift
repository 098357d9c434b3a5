public import ConduitKit
public import ConduitNATS
import ConduitWire
import NIOCore
import Synchronization

/// Messages published to `conduit.push.<id>` delivered to the ids this host holds (connected
/// or in grace), like any handler's push (SPEC §10). One subscription per held id, made when
/// the id connects and dropped when it expires. A message with a reply subject (a relay from
/// another host) is answered with whether it was accepted.
///
/// Every subscription of this process is in one queue group, so a push reaches this host
/// once even when several NATS routes and the cluster link all subscribe for the id.
public final class HeldClientPushes: Sendable {
    public static let subjectPrefix = "conduit.push."
    /// The header of a relay's answer: `true`, or why the id could not take it.
    public static let acceptedHeader = "conduit-accepted"
    private static let processGroup = "conduit.host.\(UInt64.random(in: 1...UInt64.max))"

    private let client: NATSClient
    private let pushes: any PushSink
    private let subscriptions = Mutex<[ClientID: NATSSubscription]>([:])

    public init(client: NATSClient, pushes: any PushSink) {
        self.client = client
        self.pushes = pushes
    }

    public static func subject(for client: ClientID) -> String { subjectPrefix + client.rawValue }

    public func clientEvent(_ event: ClientEvent) {
        switch event {
        case .connected(let id): hold(id)
        case .expired(let id): subscriptions.withLock { $0.removeValue(forKey: id) }?.unsubscribe()
        default: break
        }
    }

    public func stop() {
        for subscription in subscriptions.withLock({ $0.values }) { subscription.unsubscribe() }
    }

    private func hold(_ id: ClientID) {
        guard subscriptions.withLock({ $0[id] == nil }) else { return }
        // An id the subject syntax can't carry (`a..b`) gets no pushes through NATS.
        guard let subscription = try? client.subscribe(Self.subject(for: id), queue: Self.processGroup, { [weak self] in self?.deliver($0, to: id) })
        else { return }
        let raced = subscriptions.withLock { subscriptions -> Bool in
            guard subscriptions[id] == nil else { return true }
            subscriptions[id] = subscription
            return false
        }
        if raced { subscription.unsubscribe() }
    }

    private func deliver(_ message: NATSMessage, to id: ClientID) {
        let outcome = pushes.push(Message(headers: Headers(message.headers), payload: message.payload), to: id, delivery: .reliable)
        guard let replyTo = message.replyTo else { return }
        let answer: String = switch outcome {
        case .dropped(let cause): cause.rawValue
        default: "true"
        }
        try? client.publish(replyTo, headers: [Self.acceptedHeader: answer], payload: ByteBuffer())
    }
}
