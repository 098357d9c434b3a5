public import NIOCore

/// A test client over one channel that can stop reading, so the server sees a slow reader
/// (or one that never reads) until it resumes.
public protocol PausableReading {
    var channel: any Channel { get }
}

extension PausableReading {
    public func pauseReading() async throws {
        try await channel.setOption(.autoRead, value: false).get()
    }

    public func resumeReading() async throws {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
    }
}
