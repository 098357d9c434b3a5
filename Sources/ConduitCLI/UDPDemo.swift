import ArgumentParser
import ConduitClient
import ConduitWire
import Foundation
import NIOCore
import NIOPosix

/// `conduit demo udp`: a client binds a UDP socket through the host and reads; an ordinary UDP
/// socket outside the host sends it datagrams, which arrive as pushes; the client answers one
/// with `udp.send`.
struct UDPDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "udp", abstract: "UDP datagrams to and from a WebSocket client.")

    @OptionGroup var configurationOptions: ConfigurationOptions
    @Option(help: "Datagrams the outside socket sends.") var count = 5

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1, not \(count)") }
    }

    private struct Bound: Decodable { let address: String; let port: Int }

    func run() async throws {
        let count = count
        try await Demo.withHostAndClient(configurationOptions, id: "udp-demo") { client in
            let (pushes, arrived) = AsyncStream.makeStream(of: Message.self)
            // Receive before commands (the seed's guideline): pushes may follow readStart at once.
            client.receive { message in
                if message.headers["route"] == "udp.data" { arrived.yield(message) }
            }
            let bound = try await client.request(route: "udp.bind").decodeData(as: Bound.self)
            _ = try await client.request(route: "udp.readStart")
            say("udp.bind → \(bound.address):\(bound.port), udp.readStart")

            let outside = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let target = try SocketAddress(ipAddress: bound.address, port: bound.port)
            say("outside socket 127.0.0.1:\(outside.localAddress?.port ?? 0) sends \(count) datagrams")
            for n in 1...count {
                try await outside.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(string: "datagram \(n)")))
            }
            var received = 0
            for await push in pushes {
                received += 1
                say("push: udp.data from \(push.headers["address"] ?? "?"):\(push.headers["port"] ?? "?") \"\(String(buffer: push.payload))\"")
                if received == count { break }
            }
            let peerPort = outside.localAddress?.port ?? 0
            _ = try await client.request(
                route: "udp.send", headers: ["address": "127.0.0.1", "port": "\(peerPort)"], payload: ByteBuffer(string: "thanks"))
            say("udp.send \"thanks\" → 127.0.0.1:\(peerPort)")
            let state = try await client.request(route: "udp.getState")
            say("udp.getState → \(String(buffer: state.payload))")
            _ = try await client.request(route: "udp.close")
            try await outside.close()
            say("done: \(received) of \(count) datagrams delivered")
        }
    }
}
