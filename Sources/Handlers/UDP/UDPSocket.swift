import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// One client's UDP socket: its channel, its default peer (`udp.connect`) and its counters.
final class UDPSocket: Sendable {
    /// What `udp.getState` reports, so a burst can be accounted for.
    final class Counters: Sendable {
        let totals: UDPTotals
        let received = Atomic<Int>(0)
        let pushed = Atomic<Int>(0)
        let buffered = Atomic<Int>(0)
        let droppedOldest = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
        let ignored = Atomic<Int>(0)
        let tooLarge = Atomic<Int>(0)
        let sent = Atomic<Int>(0)
        /// Pushed datagrams the host dropped after accepting them.
        let evicted = DropTally()
        /// Dropped by the kernel, as last read (`KernelDrops`).
        let droppedByKernel = Atomic<Int>(0)

        init(totals: UDPTotals) {
            self.totals = totals
        }

        func droppedTooLarge() {
            tooLarge.add(1, ordering: .relaxed)
            totals.droppedTooLarge()
        }

        /// Reads the kernel's count again. On the socket's event loop.
        func readKernelDrops(of channel: any Channel) {
            guard let now = KernelDrops.read(channel) else { return }
            let before = droppedByKernel.exchange(now, ordering: .relaxed)
            if now > before { totals.droppedByKernel(now - before) }
        }
    }

    struct State: Encodable {
        let address: String?
        let port: Int?
        let remoteAddress: String?
        let remotePort: Int?
        let reading: Bool
        /// Datagrams the socket received.
        let received: Int
        /// Of those, pushed to an open socket of the id, kept in the id's buffer, or pushed
        /// while the buffer was full (each such push dropped the oldest buffered message).
        let pushedLive: Int
        let pushedBuffered: Int
        let pushedDroppingOldest: Int
        /// Not pushed: the id's queue or the host's budget had no room (dropped whole).
        let dropped: Int
        /// Pushed (counted above), then dropped whole by the host before the client read them:
        /// evicted under drop-oldest by newer messages (from the socket's outbound queue or
        /// the id's buffer), or released when the id expired. Delivered: the pushed less these.
        let evicted: Int
        /// Received while not reading, or from a peer other than the connected one.
        let ignored: Int
        /// Longer than the option maxDatagramBytes: dropped whole, not pushed.
        let droppedTooLarge: Int
        /// Dropped by the kernel before any read, the socket's receive buffer full (Linux).
        let droppedByKernel: Int
        let sent: Int
    }

    private let channel: any Channel
    private let reader: DatagramReader
    private let counters: Counters
    private let pushes: any PushSink
    /// `udp.end` under the handler's mount.
    private let endRoute: String
    private let maxDatagramBytes: Int
    private let peer = NIOLockedValueBox<SocketAddress?>(nil)
    /// The send error after which NIO closed the socket.
    private let fatalSendError = NIOLockedValueBox<String?>(nil)

    init(channel: any Channel, reader: DatagramReader, counters: Counters, pushes: any PushSink, route endRoute: String, maxDatagramBytes: Int) {
        self.channel = channel
        self.reader = reader
        self.counters = counters
        self.pushes = pushes
        self.endRoute = endRoute
        self.maxDatagramBytes = maxDatagramBytes
        channel.closeFuture.whenComplete { [counters] _ in counters.totals.socketClosed(droppedByKernel: counters.droppedByKernel.load(ordering: .relaxed)) }
    }

    var droppedByKernel: Int { counters.droppedByKernel.load(ordering: .relaxed) }

    var state: State {
        let local = channel.localAddress
        let remote = peer.withLockedValue { $0 }
        return State(
            address: local?.ipAddress, port: local?.port, remoteAddress: remote?.ipAddress, remotePort: remote?.port,
            reading: reader.isReading, received: counters.received.load(ordering: .relaxed),
            pushedLive: counters.pushed.load(ordering: .relaxed), pushedBuffered: counters.buffered.load(ordering: .relaxed),
            pushedDroppingOldest: counters.droppedOldest.load(ordering: .relaxed), dropped: counters.dropped.load(ordering: .relaxed),
            evicted: counters.evicted.count,
            ignored: counters.ignored.load(ordering: .relaxed), droppedTooLarge: counters.tooLarge.load(ordering: .relaxed),
            droppedByKernel: counters.droppedByKernel.load(ordering: .relaxed), sent: counters.sent.load(ordering: .relaxed)
        )
    }

    /// Answers the state with the kernel's drops read now, on the socket's event loop.
    func replyWithState(_ responder: Responder) {
        channel.eventLoop.execute { [self] in
            counters.readKernelDrops(of: channel)
            responder.reply(json: state)
        }
    }

    /// Sets the default destination of `udp.send`; datagrams from other peers are ignored.
    func connect(to address: SocketAddress, _ responder: Responder) throws {
        try checkFamily(of: address)
        peer.withLockedValue { $0 = address }
        reader.onlyFrom(address)
        responder.reply(json: state)
    }

    func disconnect(_ responder: Responder) {
        peer.withLockedValue { $0 = nil }
        reader.onlyFrom(nil)
        responder.reply(json: state)
    }

    func setReading(_ reading: Bool, _ responder: Responder) {
        reader.setReading(reading)
        responder.reply(json: state)
    }

    func send(_ payload: ByteBuffer, to address: SocketAddress?, _ responder: Responder) throws {
        guard payload.readableBytes <= maxDatagramBytes else {
            throw ConduitError.payloadTooLarge("a datagram carries at most \(maxDatagramBytes) bytes, not \(payload.readableBytes)")
        }
        guard let destination = address ?? peer.withLockedValue({ $0 }) else {
            throw ConduitError.badRequest("sending needs 'address' and 'port' unless the socket is connected")
        }
        try checkFamily(of: destination)
        let bytes = payload.readableBytes
        // Held until the kernel takes the datagram, among the connection's requests in flight
        // and with its bytes of the host's budget: NIO keeps every datagram the kernel can't
        // take yet (EAGAIN on a congested path), and sends unheld piled up there without end.
        responder.respondWhenDone { finish in
            let responder = Responder(finish)
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: payload)).whenComplete { [counters, channel, fatalSendError] result in
                switch result {
                case .success:
                    counters.sent.add(1, ordering: .relaxed)
                    responder.reply(json: ["bytes": bytes])
                case .failure(let error):
                    // NIO closes the socket on any error of a send but EMSGSIZE, EHOSTUNREACH,
                    // ECONNREFUSED and ENOMEM (a broadcast address's EACCES closes it); the
                    // socket then leaves its id, and its reader is told (`UDPHandler`).
                    let failure = "the datagram to \(destination) could not be sent: \(error)"
                    guard channel.isActive else {
                        fatalSendError.withLockedValue { $0 = failure }
                        return responder.fail(.unavailable("\(failure); the socket closed: bind again"))
                    }
                    responder.fail(.unavailable(failure))
                }
            }
        }
    }

    /// The kernel refuses a destination of the other family (`EAFNOSUPPORT`), which NIO takes
    /// as fatal: it closed the socket, so it is refused here, before sending.
    private func checkFamily(of destination: SocketAddress) throws {
        guard let local = channel.localAddress, local.protocol != destination.protocol else { return }
        throw ConduitError.badRequest(
            "the socket is bound to \(Self.family(of: local)) address \(local.ipAddress ?? "?"): it can't reach \(Self.family(of: destination)) address \(destination.ipAddress ?? "?")"
        )
    }

    private static func family(of address: SocketAddress) -> String {
        address.protocol == .inet6 ? "an IPv6" : "an IPv4"
    }

    /// Closes the socket, its kernel drops read first (they are gone with it).
    func close() {
        channel.eventLoop.execute { [self] in
            counters.readKernelDrops(of: channel)
            channel.close(promise: nil)
        }
    }

    /// Why NIO closed the socket under its handler.
    var closedBy: String {
        let failure = fatalSendError.withLockedValue { $0 } ?? "an error of the socket"
        return "the socket closed after \(failure): bind again"
    }

    /// Tells the id its socket is gone (`udp.end` with the reason): a client only reading
    /// would otherwise wait for datagrams that no longer come.
    func end(for client: ClientID, reason: String) {
        pushes.push(Message(headers: ["route": endRoute, "reason": reason], payload: ByteBuffer()), to: client, delivery: .reliable)
    }
}

/// The `udp.bind` failures users meet, in plain words.
enum UDPError {
    static func bindFailed(_ address: SocketAddress, _ error: any Error) -> ConduitError {
        let host = address.ipAddress ?? "\(address)"
        let port = address.port ?? 0
        if let error = error as? IOError, error.errnoCode == EADDRINUSE {
            return .unavailable("port \(port) on \(host) is already in use")
        }
        return .unavailable("binding \(host):\(port) failed: \(error)")
    }
}

import Glibc
