import ConduitKit
import NIOHTTP1

extension HTTPResponseStatus {
    /// The HTTP status an IPC caller sees for a Conduit error type (SPEC §6).
    init(conduitErrorType name: String) {
        self = switch ConduitError.Kind(name) {
        case .notFound: .notFound
        case .badRequest: .badRequest
        case .payloadTooLarge: .payloadTooLarge
        case .forbidden: .forbidden
        case .unavailable: .serviceUnavailable
        case .timeout: .gatewayTimeout
        default: .internalServerError
        }
    }
}
