public import ConduitWire

extension IPCEndpoint {
    /// `internal.conduit.diagnostics`: open sockets, per-route counts, per-id buffers.
    public struct Diagnostics: Decodable, Sendable {
        public struct Handles: Decodable, Sendable {
            /// Ids with an open socket.
            public let ids: [String]
            public let count: Int
        }
        public struct Route: Decodable, Sendable {
            public struct Stats: Decodable, Sendable {
                public let requests: Int
                public let errors: Int
                public let bytesIn: Int
                public let bytesOut: Int
            }
            public let route: String
            public let handler: String
            public let stats: Stats
            /// Why the route's handler can't serve (nil while it can).
            public let down: String?
            /// The handler's own counters and states (a NATS route's connection, say).
            public let details: [String: DiagnosticValue]?
        }
        public struct Client: Decodable, Sendable {
            public let id: String
            public let connected: Bool
            /// Pushes waiting for the id's socket, and pushes dropped from a full buffer.
            public let buffered: Int
            public let dropped: Int
        }
        public let isActive: Bool
        public let port: Int?
        public let handles: Handles
        public let routes: [Route]
        public let clients: [Client]
        /// The link to other hosts sharing client ids (nil: a host alone).
        public let cluster: [String: DiagnosticValue]?
    }
}
