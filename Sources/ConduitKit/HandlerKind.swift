/// A handler kind as the registry knows it: the name used in YAML and how to build one.
///
/// The executable builds the catalog of kinds in one place, so adding a module is a target,
/// one `HandlerKind(EchoHandler.self, name: "echo")` line and a YAML entry.
public struct HandlerKind: Sendable {
    public let name: String
    /// Decodes the options with the given decoding function, then creates the handler.
    public let make: @Sendable (_ decode: OptionsDecoder, _ context: HandlerContext) throws -> any ConduitHandler

    public init<H: ConduitHandler>(_ type: H.Type, name: String) {
        self.name = name
        self.make = { decode, context in
            try H(options: decode.decode(H.Options.self), context: context)
        }
    }
}

/// Decodes a route entry's `options` into a handler's `Options` type (supplied by the registry).
public struct OptionsDecoder: Sendable {
    private let body: @Sendable (any (Decodable & Sendable).Type) throws -> any Sendable

    public init(_ body: @escaping @Sendable (any (Decodable & Sendable).Type) throws -> any Sendable) {
        self.body = body
    }

    public func decode<T: Decodable & Sendable>(_ type: T.Type) throws -> T {
        // The registry's body decodes exactly the type it is given.
        try body(type) as! T
    }
}
