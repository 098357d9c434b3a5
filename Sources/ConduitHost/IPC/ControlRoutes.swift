import ConduitKit
import ConduitWire
import Foundation
import NIOCore

/// The `internal.conduit.*` routes (SPEC §6), answered like socket replies: `{"data":…}` or
/// an error with `{"err":{type,message}}`.
enum ControlRoutes {
    static let prefix = "internal.conduit."
    static let events = "internal.conduit.events"
    /// A body larger than this is refused: the largest any route reads is `{"sharedKey":…}`
    /// (a key is at most 256 bytes, each of which JSON may write as six).
    static let maxBodyBytes = 4096

    /// The routes that change the host: they wait their turn in the control plane's queue.
    static func changesTheHost(_ route: String) -> Bool {
        ["start", "stop", "setSharedKey", "reload"].contains(route.dropFirst(prefix.count))
    }

    /// `caller`: who asks, with the key it showed (checked again when a change runs).
    static func answer(_ route: String, headers: Headers, body: ByteBuffer?, caller: ControlCaller, control: HostControl) async -> Result<Reply, ConduitError> {
        do {
            switch route.dropFirst(prefix.count) {
            case "status": return .success(try .json(await control.status()))
            case "start": return .success(try .json(try await start(control, for: caller)))
            case "stop": return .success(try .json(try await control.stop(for: caller)))
            case "getSharedKey": return .success(try .json(SharedKeyBody(sharedKey: control.sharedKey.value)))
            case "setSharedKey":
                let key = try newKey(headers: headers, body: body)
                do {
                    return .success(try .json(try await control.setSharedKey(key, for: caller)))
                } catch let error as ConduitKeyError {
                    throw ConduitError.badRequest(error.description)
                }
            case "diagnostics": return .success(try .json(await control.diagnostics(listing: try listedClients(headers))))
            case "reload":
                let unapplied: [String]
                do {
                    unapplied = try await control.reload(for: caller)
                } catch let error as ConfigurationError {
                    throw ConduitError.badRequest("reload refused, the previous route table stays: \(error.description)")
                }
                return .success(try .json(ReloadBody(reloaded: true, settingsNotApplied: unapplied)))
            default:
                throw ConduitError.notFound("no control route '\(route)'")
            }
        } catch {
            return .failure(ConduitError(converting: error))
        }
    }

    private static func start(_ control: HostControl, for caller: ControlCaller) async throws -> HostControl.Status {
        do {
            return try await control.start(for: caller)
        } catch let error as ListenFailure {
            // The listener's bind, named with its address (a port taken meanwhile).
            throw ConduitError.unavailable("the socket server can't listen: \(error)")
        }
    }

    /// The ids diagnostics list: the one `id=` names, the first `clients=N`, else the first
    /// `Diagnostics.listedClients`.
    private static func listedClients(_ headers: Headers) throws(ConduitError) -> ClientDirectory.Listing {
        if let id = headers["id"] {
            guard let client = ClientID(id) else { throw .badRequest("'id' must be a uint64 or 1–64 of [A-Za-z0-9._-]") }
            return .only(client)
        }
        guard let value = headers["clients"] else { return .first(HostControl.Diagnostics.listedClients) }
        guard let count = Int(value), count >= 0 else { throw .badRequest("'clients' must be how many ids to list: 0 or more") }
        return .first(count)
    }

    /// `sharedKey` from the query, else from a JSON body `{"sharedKey":…}`.
    private static func newKey(headers: Headers, body: ByteBuffer?) throws(ConduitError) -> String {
        if let key = headers["sharedKey"] { return key }
        guard let body, body.readableBytes > 0 else {
            throw .badRequest("give the new key as the query parameter 'sharedKey' or a JSON body {\"sharedKey\":…}")
        }
        guard let decoded = try? JSONDecoder().decode(SharedKeyBody.self, from: Data(body.readableBytesView)) else {
            throw .badRequest("the body is not a JSON object {\"sharedKey\": \"…\"}")
        }
        return decoded.sharedKey
    }

    private struct SharedKeyBody: Codable {
        let sharedKey: String
    }

    /// `settingsNotApplied`: the settings the file changes, which apply at the next start.
    private struct ReloadBody: Codable {
        let reloaded: Bool
        let settingsNotApplied: [String]
    }
}
