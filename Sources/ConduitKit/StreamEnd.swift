public import ConduitWire
public import NIOCore

/// The message that ends a byte stream (`tls.end`): the client must get it, or it waits for
/// the rest of a stream that is over. (An AI stream retries its last from its own task, paced
/// the same.)
public enum StreamEnd {
    /// Between two tries: with the budget full and the id's queue empty, `whenWritable` calls
    /// back at once, and a retry without a pause recursed without end.
    public static let retryPause = TimeAmount.milliseconds(100)

    /// Pushes `end` (`.reliable`), and again once `client`'s queue has room when it has none now
    /// (a buffer full of other reliable pushes, or the host's budget): refused once, it was
    /// lost. The id's expiry calls the wait too; the push then goes to a gone id, and lives its
    /// grace period.
    public static func push(_ end: Message, to client: ClientID, pushes: any PushSink, retryingOn eventLoop: any EventLoop) {
        guard case .dropped(let cause) = pushes.push(end, to: client, delivery: .reliable), cause.isWantOfRoom else { return }
        pushes.whenWritable(client) {
            eventLoop.scheduleTask(in: retryPause) { push(end, to: client, pushes: pushes, retryingOn: eventLoop) }
        }
    }
}
