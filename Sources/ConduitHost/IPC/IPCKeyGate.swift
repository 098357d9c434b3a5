import ConduitKit
import Foundation
import NIOCore
import NIOHTTP1

/// The first word on an IPC connection (SPEC §6): the shared key is checked on the request's
/// head, before any of its body is read or buffered. A request without the right key is
/// answered 401/403 at once and the connection closed; its body is never read (100 callers
/// without the key sending 15 MiB each once held 1.5 GB).
final class IPCKeyGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let sharedKey: SharedKey
    /// Called when a request shows the right key (the connection keeps its place).
    private let proven: () -> Void
    /// Called when one does not: counted, as a refused handshake is (someone guessing the key).
    private let refused: () -> Void
    /// A refused request: the rest of it is dropped unread while the answer goes out.
    private var refusing = false

    init(sharedKey: SharedKey, proven: @escaping () -> Void, refused: @escaping () -> Void) {
        self.sharedKey = sharedKey
        self.proven = proven
        self.refused = refused
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Refused, the connection closes once its answer is written: nothing pipelined behind
        // the request is answered (a second 403 followed one that said `Connection: close`).
        guard !refusing else { return }
        guard case .head(let head) = unwrapInboundIn(data) else { return context.fireChannelRead(data) }
        guard let candidate = Self.presentedKey(head.headers, queryKey: IPCTarget(uri: head.uri).key) else {
            return refuse(context, .unauthorized, "the shared key is required: 'Authorization: Bearer <key>' or '?key=<key>'")
        }
        guard sharedKey.matches(candidate) else {
            return refuse(context, .forbidden, "wrong shared key")
        }
        proven()
        context.fireChannelRead(data)
    }

    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ message: String) {
        refusing = true
        refused()
        // RFC 9110 §15.5.2: a 401 names the scheme that would be accepted.
        let challenge: HTTPHeaders = status == .unauthorized ? ["www-authenticate": "Bearer"] : [:]
        IPCRefusal.send(status, .forbidden(message), headers: challenge, countedIn: nil, context: context)
    }

    /// The key a request shows: its bearer token, else its `key` query parameter.
    static func presentedKey(_ headers: HTTPHeaders, queryKey: String?) -> String? {
        bearerToken(headers) ?? queryKey
    }

    private static func bearerToken(_ headers: HTTPHeaders) -> String? {
        guard let value = headers["authorization"].first, value.lowercased().hasPrefix("bearer ") else { return nil }
        return String(value.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    }
}
