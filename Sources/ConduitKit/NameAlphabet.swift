/// The characters of the names the host takes from outside (client ids, window ids, route
/// names): `[A-Za-z0-9._-]`, safe in URLs, logs and metric labels without escaping.
public enum NameAlphabet {
    public static func contains(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}
