import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitUDP
import ConduitWire
import Foundation
import NIOCore
import Testing

extension HandlerCatalog {
    static let udpTests = HandlerCatalog([HandlerKind(UDPHandler.self, name: "udp")])
}

extension TestHost {
    /// Connects as `client`, binds and starts reading, then closes the WebSocket (the UDP
    /// socket stays, reading) and waits until the host sees the id without a socket.
    func bindReadAndLeave(client: String) async throws -> Int {
        let socket = try await connect(client: client)
        let port = try await socket.bindAndRead()
        try await socket.close()
        try await socket.waitUntilClosed()
        try await waitUntil(timeout: .seconds(60)) { self.client(client)?.connected != true }
        return port
    }
}

/// SPEC §5 UDP over real sockets: a WebSocket client drives `udp.*`, an ordinary UDP socket
/// outside the host is the far side.
@Suite("UDP handler", .serialized, .timeLimit(.minutes(2)))
struct UDPTests {
    static func yaml(buffer: Int = 4096, grace: Int = 30) -> String {
        """
        limits:
          pushBufferMessages: \(buffer)
          clientGraceSeconds: \(grace)
        routes:
          - route: udp.*
            handler: udp
        """
    }

    @Test func theModuleWorksUnderAnotherPrefixAndItsPushesFollowIt() async throws {
        let yaml = "routes:\n  - route: dgram.*\n    handler: udp\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-mounted")
            let missing = try await client.request(Message(headers: ["route": "dgram.getState"]))
            #expect(String(buffer: missing.payload).contains("call dgram.bind first"), "hints name the mount")
            let port = try #require(try await client.udpState(["route": "dgram.bind"]).port)
            _ = try await client.udpState(["route": "dgram.readStart"])
            let peer = try await UDPPeer()
            try await peer.send(Array("to the mount".utf8), to: port)
            let push = try await client.nextMessage()
            #expect(push.headers["route"] == "dgram.data")
            #expect(String(buffer: push.payload) == "to the mount")
            let old = try await client.request(Message(headers: ["route": "udp.getState"]))
            #expect(old.headers["error"] == "NotFoundError")
            try await peer.close()
        }
    }

    @Test func bindReportsTheBoundAddressAndEphemeralPort() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let client = try await host.connect(client: "u1")
            let state = try await client.udpState(["route": "udp.bind", "port": "0"])
            #expect(state.address == "127.0.0.1")
            #expect((state.port ?? 0) > 0)
            #expect(state.reading == false)
        }
    }

    @Test func datagramsFromAnExternalSocketArriveWithTheirAddressAndPort() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let client = try await host.connect(client: "u2")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()
            for n in 0..<20 { try await peer.send(Array("datagram \(n)".utf8), to: port) }
            for n in 0..<20 {
                let push = try await client.nextMessage()
                #expect(push.headers["route"] == "udp.data")
                #expect(push.headers["address"] == "127.0.0.1")
                #expect(push.headers["port"] == "\(peer.port)")
                #expect(String(buffer: push.payload) == "datagram \(n)")
            }
            try await peer.close()
        }
    }

    @Test(arguments: [65_507, 9_000])
    func datagramsUpToTheLimitArriveWhole(maxDatagramBytes: Int) async throws {
        let yaml = Self.yaml() + "\n    options:\n      maxDatagramBytes: \(maxDatagramBytes)\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-large")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()
            // Sizes around NIO's 2 KiB default room and up to the limit, several per read.
            let sizes = [1, 2_047, 2_048, 2_049, 8_192, maxDatagramBytes - 1, maxDatagramBytes]
            let datagrams = sizes.enumerated().map { index, size in (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ index) } }
            for datagram in datagrams { try await peer.send(datagram, to: port) }
            for datagram in datagrams {
                let push = try await client.nextMessage()
                #expect(push.payload.readableBytes == datagram.count)
                #expect(push.payload == ByteBuffer(bytes: datagram), "the bytes of the \(datagram.count)-byte datagram")
            }
            try await peer.close()
        }
    }

    /// NIO does not report a datagram the kernel cut to its room, and the room NIO gives each
    /// is not exactly the limit: one longer than the limit was pushed (9,001 bytes against a
    /// 9,000-byte limit, counted as pushed); one longer than its room would have been cut.
    @Test func aDatagramOverTheLimitIsDroppedWholeAndCounted() async throws {
        let maxDatagramBytes = 9_000
        let yaml = Self.yaml() + "\n    options:\n      maxDatagramBytes: \(maxDatagramBytes)\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-over")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()
            for size in [maxDatagramBytes + 1, maxDatagramBytes + 500] { try await peer.send([UInt8](repeating: 7, count: size), to: port) }
            try await peer.send(Array("after".utf8), to: port)
            let push = try await client.nextMessage()
            #expect(String(buffer: push.payload) == "after", "pushed \(push.payload.readableBytes) bytes of a datagram over the limit")
            let state = try await client.udpState(["route": "udp.getState"])
            #expect(state.droppedTooLarge == 2)
            #expect(state.received == 3)
            try await peer.close()
        }
    }

    @Test func sendReachesAnExternalSocketByAddressOrThroughConnect() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let client = try await host.connect(client: "u3")
            let bound = try await client.udpState(["route": "udp.bind"])
            let peer = try await UDPPeer()
            let sent = try await client.request(.init(
                headers: ["route": "udp.send", "address": "127.0.0.1", "port": "\(peer.port)"], payload: Array("to peer".utf8)))
            #expect(sent.headers["error"] == nil)
            let first = try await peer.next()
            #expect(String(buffer: first.data) == "to peer")
            #expect(first.remoteAddress.port == bound.port)

            let connected = try await client.udpState(["route": "udp.connect", "address": "127.0.0.1", "port": "\(peer.port)"])
            #expect(connected.remotePort == peer.port)
            _ = try await client.request(.init(headers: ["route": "udp.send"], payload: Array("connected".utf8)))
            #expect(String(buffer: try await peer.next().data) == "connected")

            let disconnected = try await client.udpState(["route": "udp.disconnect"])
            #expect(disconnected.remotePort == nil)
            let refused = try await client.request(.init(headers: ["route": "udp.send", "token": "x"], payload: [1]))
            #expect(refused.headers["error"] == "BadRequestError")
            try await peer.close()
        }
    }

    @Test func readStopStopsDeliveryAndReadStartResumesIt() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let client = try await host.connect(client: "u4")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()
            try await peer.send(Array("one".utf8), to: port)
            #expect(String(buffer: try await client.nextMessage().payload) == "one")

            #expect(try await client.udpState(["route": "udp.readStop"]).reading == false)
            try await peer.send(Array("ignored".utf8), to: port)
            try await waitUntil { try await client.udpState(["route": "udp.getState"]).ignored == 1 }
            #expect(try await client.udpState(["route": "udp.readStart"]).reading == true)
            try await peer.send(Array("two".utf8), to: port)
            #expect(String(buffer: try await client.nextMessage().payload) == "two")
            try await peer.close()
        }
    }

    @Test func aReconnectWithTheSameIdGetsTheDatagramsOfTheGapInOrder() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let port = try await host.bindReadAndLeave(client: "u5")

            let peer = try await UDPPeer()
            for n in 0..<200 { try await peer.send(Array("gap \(n)".utf8), to: port) }
            try await waitUntil { host.client("u5")?.buffered == 200 }

            let second = try await host.connect(client: "u5")
            for n in 0..<200 {
                #expect(String(buffer: try await second.nextMessage().payload) == "gap \(n)")
            }
            // Delivery goes on live on the new socket.
            try await peer.send(Array("live".utf8), to: port)
            #expect(String(buffer: try await second.nextMessage().payload) == "live")
            try await peer.close()
        }
    }

    /// 10,000 datagrams while the id has no socket: every one is received, and what the id's
    /// bounded buffer keeps plus what it dropped (oldest first) adds up to what was sent.
    @Test func aBurstOf10000DatagramsIsAccountedFor() async throws {
        let bound = 4096
        // The id outlives the test: a loaded machine took over 30 s (the grace it had) to send
        // the bursts, and the id expired with its socket and buffer before the last.
        try await TestHost.run(yaml: Self.yaml(buffer: bound, grace: 600), catalog: .udpTests) { host in
            let port = try await host.bindReadAndLeave(client: "u6")

            let peer = try await UDPPeer()
            let total = 10_000
            // In bursts of 200, each waited for, so the kernel's receive buffer never overflows
            // and every loss is the host's policy, not the network's: at Linux's default
            // `rmem_max` the socket holds 512 such datagrams, and a burst of 1,000 counted on
            // the host reading while it came.
            let burstSize = 200
            for burst in stride(from: 0, to: total, by: burstSize) {
                for n in burst..<burst + burstSize { try await peer.send(withUnsafeBytes(of: UInt32(n).bigEndian, Array.init), to: port) }
                try await waitUntil(timeout: .seconds(60)) { host.client("u6")?.pushes == burst + burstSize }
            }
            let snapshot = try #require(host.client("u6"))
            #expect(snapshot.buffered == bound)
            #expect(snapshot.dropped == total - bound)

            let second = try await host.connect(client: "u6")
            var delivered = 0
            for n in (total - bound)..<total {
                let push = try await second.nextMessage()
                #expect(push.payload.getInteger(at: push.payload.readerIndex, as: UInt32.self) == UInt32(n))
                delivered += 1
            }
            let state = try await second.udpState(["route": "udp.getState"])
            #expect(state.received == total)
            #expect(state.pushedBuffered + state.pushedDroppingOldest == total)
            #expect(delivered + snapshot.dropped == total)
            try await peer.close()
        }
    }

    @Test func theSocketIsClosedWhenTheIdExpires() async throws {
        try await TestHost.run(yaml: Self.yaml(grace: 1), catalog: .udpTests) { host in
            let port = try await host.bindReadAndLeave(client: "u7")
            try await waitUntil { host.client("u7") == nil }
            // The port is freed (the close is asynchronous): another client can bind it.
            let other = try await host.connect(client: "u8")
            try await waitUntil {
                try await other.request(.init(headers: ["route": "udp.bind", "port": "\(port)"])).headers["error"] == nil
            }
            #expect(try await other.udpState(["route": "udp.getState"]).port == port)
        }
    }

    @Test func aMisspeltOptionIsAStartUpErrorWithItsPosition() async throws {
        let yaml = "routes:\n  - route: udp.*\n    handler: udp\n    options:\n      maxDatagramByte: 10\n"
        let error = await #expect(throws: (any Error).self) {
            try await TestHost.run(yaml: yaml, catalog: .udpTests) { _ in }
        }
        let message = String(describing: try #require(error))
        #expect(message.contains("<test>:5:24"), "\(message)")
        #expect(message.contains("unknown option 'maxDatagramByte'"), "\(message)")
    }

    @Test func aDefaultBindAddressThatIsNotAnIPIsAStartUpError() async throws {
        let yaml = "routes:\n  - route: udp.*\n    handler: udp\n    options:\n      defaultBindAddress: localhost\n"
        let error = await #expect(throws: (any Error).self) {
            try await TestHost.run(yaml: yaml, catalog: .udpTests) { _ in }
        }
        let message = String(describing: try #require(error))
        #expect(message.contains("defaultBindAddress") && message.contains("must be an IPv4 or IPv6 address"), "\(message)")
    }

    @Test func badRequestsAreClearErrorsAndLeaveOtherSocketsWorking() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let good = try await host.connect(client: "good")
            let goodPort = try await good.bindAndRead()
            let bad = try await host.connect(client: "bad")

            let unknown = try await bad.request(.init(headers: ["route": "udp.send", "token": "1"], payload: [1]))
            #expect(unknown.headers["error"] == "NotFoundError")
            #expect(unknown.headers["token"] == "1")

            // A name is not looked up: resolving it would block the connection's event loop
            // (every socket on it) for as long as the resolver takes.
            let named = try await bad.request(.init(headers: ["route": "udp.bind", "address": "localhost"]))
            #expect(named.headers["error"] == "BadRequestError")
            #expect(String(buffer: named.payload).contains("'localhost' is not an IPv4 or IPv6 address"))

            let inUse = try await bad.request(.init(headers: ["route": "udp.bind", "port": "\(goodPort)"]))
            #expect(inUse.headers["error"] == "UnavailableError")
            #expect(String(buffer: inUse.payload).contains("already in use"))

            _ = try await bad.udpState(["route": "udp.bind"])
            let twice = try await bad.request(.init(headers: ["route": "udp.bind"]))
            #expect(twice.headers["error"] == "BadRequestError")

            let badAddress = try await bad.request(.init(headers: ["route": "udp.send", "address": "not-an-ip", "port": "9"], payload: [1]))
            #expect(badAddress.headers["error"] == "BadRequestError")
            let badPort = try await bad.request(.init(headers: ["route": "udp.send", "address": "127.0.0.1", "port": "70000"], payload: [1]))
            #expect(badPort.headers["error"] == "BadRequestError")
            let oversize = try await bad.request(.init(
                headers: ["route": "udp.send", "address": "127.0.0.1", "port": "9"], payload: [UInt8](repeating: 0, count: 65_508)))
            // One byte over what a UDP datagram over IPv4 can carry.
            #expect(oversize.headers["error"] == "PayloadTooLargeError")
            let unknownOperation = try await bad.request(.init(headers: ["route": "udp.explode"]))
            #expect(unknownOperation.headers["error"] == "NotFoundError")

            let closed = try await bad.request(.init(headers: ["route": "udp.close"]))
            #expect(closed.headers["error"] == nil)
            let afterClose = try await bad.request(.init(headers: ["route": "udp.getState"]))
            #expect(afterClose.headers["error"] == "NotFoundError")

            // The good socket still delivers.
            let peer = try await UDPPeer()
            try await peer.send(Array("still here".utf8), to: goodPort)
            #expect(String(buffer: try await good.nextMessage().payload) == "still here")
            try await peer.close()
        }
    }
}

extension UDPTests {
    /// Sockets are bounded for all ids together (`maxSockets`): any client with the key can
    /// name as many ids as it likes, and each socket holds a descriptor and a 64 KiB read
    /// buffer. Past the bound `udp.bind` is answered `UnavailableError`; a closed socket's
    /// place is free again.
    @Test func socketsAreBoundedForAllIdsTogether() async throws {
        let yaml = Self.yaml() + "\n    options:\n      maxSockets: 2\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            var clients: [TestWebSocketClient] = []
            for name in ["u-first", "u-second", "u-third"] { clients.append(try await host.connect(client: name)) }
            for client in clients.prefix(2) {
                #expect(try await client.request(.init(headers: ["route": "udp.bind"])).headers["error"] == nil)
            }
            let refused = try await clients[2].request(.init(headers: ["route": "udp.bind"]))
            #expect(refused.headers["error"] == "UnavailableError")
            #expect(String(buffer: refused.payload).contains("2 UDP sockets open"))
            #expect(try await clients[0].request(.init(headers: ["route": "udp.close"])).headers["error"] == nil)
            #expect(try await clients[2].request(.init(headers: ["route": "udp.bind"])).headers["error"] == nil)
        }
    }
}

extension UDPTests {
    /// A send the kernel refuses in a way NIO takes as fatal (an IPv6 destination from an IPv4
    /// socket, `EAFNOSUPPORT`; broadcast without `SO_BROADCAST`, `EACCES`) closed the socket,
    /// which the handler went on treating as live: datagrams were lost uncounted, `getState`
    /// said `reading: true` with no port, and `udp.bind` was refused ("already has a socket").
    /// Another family is refused before sending now, and a socket that closes under the
    /// handler leaves its id, with the failing send told so.
    @Test func aSendTheKernelRefusesLeavesTheSocketWorkingOrGone() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-refused")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()

            let otherFamily = try await client.request(.init(headers: ["route": "udp.send", "address": "::1", "port": "9"], payload: [1]))
            #expect(otherFamily.headers["error"] == "BadRequestError", "\(String(buffer: otherFamily.payload))")
            #expect(String(buffer: otherFamily.payload).contains("IPv6"))
            let connectOther = try await client.request(.init(headers: ["route": "udp.connect", "address": "::1", "port": "9"]))
            #expect(connectOther.headers["error"] == "BadRequestError")
            try await peer.send(Array("after".utf8), to: port)
            #expect(String(buffer: try await client.nextMessage().payload) == "after")

            let broadcast = try await client.request(.init(headers: ["route": "udp.send", "address": "255.255.255.255", "port": "9"], payload: [1]))
            #expect(broadcast.headers["error"] == "UnavailableError")
            // Linux refuses it (`EACCES`: no `SO_BROADCAST`) and NIO closes the socket: it is
            // gone from the id, which may bind again.
            #expect(String(buffer: broadcast.payload).contains("the socket closed: bind again"), "\(String(buffer: broadcast.payload))")
            let state = try await client.request(.init(headers: ["route": "udp.getState", "token": "state"]))
            #expect(state.headers["error"] == "NotFoundError")
            // Its reader is told (`udp.end`), ahead of anything the next socket reads.
            #expect(try await client.nextMessage().headers["route"] == "udp.end")
            let again = try await client.bindAndRead()
            try await peer.send(Array("again".utf8), to: again)
            #expect(String(buffer: try await client.nextMessage().payload) == "again")
            try await peer.close()
        }
    }
}
