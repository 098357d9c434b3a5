/// An IPC fallback receiver of one id's pushes (SPEC §6). Both calls may come under the
/// directory's lock: implementations only hop to their event loop.
protocol PushStream: AnyObject, Sendable {
    /// Pushes wait in the id's buffer; the stream takes them with `takeNext` as it writes.
    func messagesAvailable()
    /// A socket or another stream took over the id.
    func end()
}
