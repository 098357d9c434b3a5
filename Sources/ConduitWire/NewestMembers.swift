import NIOCore

/// A set that keeps its newest `limit` members: inserting past the limit forgets the oldest.
/// Membership is found in constant time. For what a side must remember for a while, bounded:
/// tokens whose answers are to be swallowed, requests cancelled whose replies are not sent.
public struct NewestMembers<Element: Hashable & Sendable>: Sendable {
    public let limit: Int
    private var order = CircularBuffer<Element>()
    private var members: Set<Element> = []

    public init(limit: Int) {
        precondition(limit > 0, "a set that keeps no member")
        self.limit = limit
    }

    public var count: Int { members.count }

    public func contains(_ member: Element) -> Bool { members.contains(member) }

    /// Inserts `member`: whether it is new, and the member forgotten to make room, if any.
    @discardableResult
    public mutating func insert(_ member: Element) -> (inserted: Bool, forgotten: Element?) {
        guard members.insert(member).inserted else { return (false, nil) }
        order.append(member)
        guard order.count > limit else { return (true, nil) }
        let forgotten = order.removeFirst()
        members.remove(forgotten)
        return (true, forgotten)
    }
}
