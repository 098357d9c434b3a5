/// The hard limits of the framing (SPEC §1). They follow from the field widths.
public enum WireLimits {
    public static let maxHeaders = 255
    public static let maxKeyBytes = 255
    public static let maxValueBytes = 65_535
    public static let maxPayloadBytes = 65_535
}
