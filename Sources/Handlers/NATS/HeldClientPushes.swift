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
/// Several of these can serve one host (each `nats` route and the cluster link has one). Only
/// the first started subscribes, so an id's pushes come over one NATS connection, in order;
/// when it stops, the next takes over the ids it holds.
public final class HeldClientPushes: Sendable {
    public static let subjectPrefix = "conduit.push."
    /// The header of a relay's answer: `true`, or why the id could not take it.
    public static let acceptedHeader = "conduit-accepted"
    /// Marks a relay from another host (SPEC §3 `to`): taken only by an id with an open socket.
    public static let relayHeader = "conduit-relay"
    /// A relay's answer when the id has no open socket here (it is in grace), given after
    /// `noSocketDelay`: a host where the id has one (it moved there) answers first, and its
    /// answer is the one the sender gets.
    public static let noSocket = "no-socket"
    static let noSocketDelay = Duration.milliseconds(250)
    /// Per push sink (one per host), its instances in start order; the first one delivers.
    private static let instances = Mutex<[ObjectIdentifier: [HeldClientPushes]]>([:])

    private struct State {
        var held: Set<ClientID> = []
        var subscriptions: [ClientID: NATSSubscription] = [:]
        var isDelivering = false
    }

    private let client: NATSClient
    private let pushes: any PushSink
    private let sink: ObjectIdentifier
    private let state = Mutex(State())

    public init(client: NATSClient, pushes: any PushSink) {
        self.client = client
        self.pushes = pushes
        self.sink = ObjectIdentifier(pushes as AnyObject)
    }

    /// Joins the host's instances (a handler built only to check a configuration never does,
    /// so it leaves nothing behind); the first one started delivers.
    public func start() {
        let first = Self.instances.withLock { instances in
            instances[sink, default: []].append(self)
            return instances[sink]!.count == 1
        }
        if first { takeOver() }
    }

    public static func subject(for client: ClientID) -> String { subjectPrefix + client.rawValue }

    public func clientEvent(_ event: ClientEvent) {
        switch event {
        case .connected(let id):
            let deliver = state.withLock { state in
                state.held.insert(id).inserted && state.isDelivering
            }
            if deliver { subscribe(id) }
        case .expired(let id):
            state.withLock { state in
                state.held.remove(id)
                return state.subscriptions.removeValue(forKey: id)
            }?.unsubscribe()
        default:
            break
        }
    }

    /// Ends this one's subscriptions; the next of the host's instances takes over its ids, with
    /// those it held: one started later (a reload's) heard only of ids that connected since, and
    /// the others' pushes found no subscriber.
    public func stop() {
        let (subscriptions, held) = state.withLock { state in
            state.isDelivering = false
            defer { state.subscriptions = [:] }
            return (state.subscriptions.values, state.held)
        }
        for subscription in subscriptions { subscription.unsubscribe() }
        let next = Self.instances.withLock { instances -> HeldClientPushes? in
            instances[sink]?.removeAll { $0 === self }
            if instances[sink]?.isEmpty == true { instances[sink] = nil }
            return instances[sink]?.first
        }
        next?.takeOver(alsoHolding: held)
    }

    private func takeOver(alsoHolding inherited: Set<ClientID> = []) {
        let held = state.withLock { state -> Set<ClientID> in
            state.held.formUnion(inherited)
            guard !state.isDelivering else { return [] }
            state.isDelivering = true
            return state.held
        }
        for id in held { subscribe(id) }
    }

    private func subscribe(_ id: ClientID) {
        // An id the subject syntax can't carry (`a..b`) gets no pushes through NATS.
        guard let subscription = try? client.subscribe(Self.subject(for: id), { [weak self] in self?.deliver($0, to: id) }) else { return }
        let keep = state.withLock { state -> Bool in
            guard state.isDelivering, state.held.contains(id), state.subscriptions[id] == nil else { return false }
            state.subscriptions[id] = subscription
            return true
        }
        if !keep { subscription.unsubscribe() }
    }

    /// A plain publish follows the host's policy for a full buffer (drop-oldest by default:
    /// nobody learns its fate, so the newest win); one published as a request is kept or
    /// refused whole, and its publisher is told which.
    ///
    /// A relay from another host is, as on the host it came from, for an id with an open socket
    /// only: one in grace took it into its buffer, and the sender was told `delivered`.
    private func deliver(_ message: NATSMessage, to id: ClientID) {
        var headers = Headers(message.headers)
        let isRelay = headers[Self.relayHeader] != nil
        headers.removeAll(Self.relayHeader)
        let answer: String
        if isRelay, !pushes.isConnected(id) {
            answer = Self.noSocket
        } else {
            let delivery: PushDelivery = message.replyTo == nil ? .droppable : .reliable
            answer = switch pushes.push(Message(headers: headers, payload: message.payload), to: id, delivery: delivery) {
            case .dropped(let cause): cause.rawValue
            default: "true"
            }
        }
        guard let replyTo = message.replyTo else { return }
        guard answer == Self.noSocket else {
            try? client.publish(replyTo, headers: [Self.acceptedHeader: answer], payload: ByteBuffer())
            return
        }
        Task { [client] in
            try? await Task.sleep(for: Self.noSocketDelay)
            try? client.publish(replyTo, headers: [Self.acceptedHeader: answer], payload: ByteBuffer())
        }
    }
}
