import NIOCore

/// How long a test waits, by default, for what must come. Generous: in CI a loaded two-core
/// machine once stalled a whole parallel run for over 10 s, so a reply due from a 2 s timer came
/// past a 10 s wait. Only a failing test ever waits this long.
public enum Patience {
    public static let duration = Duration.seconds(30)
    public static let timeAmount = TimeAmount.seconds(30)
}
