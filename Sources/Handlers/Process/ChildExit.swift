#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a child ended, told apart as the shell does: an exit status, or the signal that killed it.
enum ChildExit: Sendable, CustomStringConvertible {
    case status(Int32)
    case signal(Int32)

    var description: String {
        switch self {
        case .status(let status): "exited with status \(status)"
        case .signal(let signal): "was killed by signal \(signal)\(Self.name(of: signal).map { " (\($0))" } ?? "")"
        }
    }

    private static func name(of signal: Int32) -> String? {
        switch signal {
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGILL: "SIGILL"
        case SIGFPE: "SIGFPE"
        case SIGINT: "SIGINT"
        case SIGPIPE: "SIGPIPE"
        default: nil
        }
    }
}
