package import NIOCore

/// Where a request's replies go. The host implements it once per connection, so answering a
/// request allocates nothing; a `Responder` made from a closure (in tests) wraps the closure.
package protocol ReplyDestination: Sendable {
    func deliver(_ result: Result<Reply, ConduitError>, to request: ReplyAddress)
}

/// What a reply carries back to its request (SPEC §3), and what the host counts it against.
package struct ReplyAddress: Sendable {
    package let route: String
    /// The request's `token` (or `seq`) header.
    package let correlation: (name: String, value: String)?
    /// When the request reached its handler: a reply's latency starts here.
    package let received: NIODeadline
    package let counter: (any ReplyCounter)?

    package init(route: String, correlation: (name: String, value: String)?, received: NIODeadline, counter: (any ReplyCounter)?) {
        self.route = route
        self.correlation = correlation
        self.received = received
        self.counter = counter
    }
}

/// Counts the replies of one route.
package protocol ReplyCounter: AnyObject, Sendable {
    func countReply(bytes: Int, errorType: String?, since received: NIODeadline)
}

/// A destination that hands every result to a closure.
struct ClosureDestination: ReplyDestination {
    let sink: @Sendable (Result<Reply, ConduitError>) -> Void

    func deliver(_ result: Result<Reply, ConduitError>, to request: ReplyAddress) { sink(result) }
}
