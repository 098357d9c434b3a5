#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A configuration file's text, read with POSIX calls. Foundation's reader refused what is not
/// a regular file (`--config /dev/stdin`, a FIFO, `<(…)`) as "You don't have permission", and
/// named a directory or a byte that is not UTF-8 in words of its own ("error 256", "isn't in
/// the correct format"), without where.
enum ConfigurationFile {
    /// Far above any route table (15,000 routes are about 600 KB), and a wrong path (a disk
    /// image, a log) is refused instead of read into memory.
    static let maxBytes = 16 << 20

    static func text(at path: String, regularFileOnly: Bool = false) throws(ConfigurationError) -> String {
        func refusal(_ words: String) -> ConfigurationError {
            ConfigurationError(SourceLocation(file: path, mark: nil), "the file can't be read: \(words)")
        }
        // Before `open`, which waits for a FIFO's writer.
        var kind = stat()
        if regularFileOnly, stat(path, &kind) == 0, kind.st_mode & S_IFMT != S_IFREG {
            throw refusal("it is not a regular file (a pipe read again could wait for ever; reload from a file)")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw refusal(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        if fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFDIR { throw refusal("it is a directory") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count == 0 { break }
            guard count > 0 else {
                if errno == EINTR { continue }
                throw refusal(String(cString: strerror(errno)))
            }
            guard bytes.count + count <= maxBytes else { throw refusal("it is larger than \(maxBytes >> 20) MiB") }
            bytes.append(contentsOf: chunk[..<count])
        }
        if let invalid = firstInvalidUTF8(in: bytes) {
            throw ConfigurationError(SourceLocation(file: path, byteOffset: invalid, in: bytes), "the file is not UTF-8 here")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func firstInvalidUTF8(in bytes: [UInt8]) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}
