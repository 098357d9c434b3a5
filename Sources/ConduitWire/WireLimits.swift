/// The hard limits of the framing (SPEC §1). They follow from the field widths.
public enum WireLimits {
    public static let maxHeaders = 255
    public static let maxKeyBytes = 255
    public static let maxValueBytes = 65_535
    public static let maxPayloadBytes = 65_535
    /// The largest encoded message: the count, every header at its largest, the payload's
    /// length and the largest payload (16,842,753 bytes).
    public static let maxEncodedBytes = 1 + maxHeaders * (1 + maxKeyBytes + 2 + maxValueBytes) + 2 + maxPayloadBytes
}
