/// Message headers: an ordered list of key/value pairs that keeps repeated keys.
///
/// Order is kept as sent; a single-valued lookup of a repeated key gives the last one.
public struct Headers: Hashable, Sendable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    public typealias Element = (name: String, value: String)

    private var fields: [Field]

    private struct Field: Hashable, Sendable {
        var name: String
        var value: String
    }

    public init() { fields = [] }

    public init(_ pairs: some Sequence<(String, String)>) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    public var startIndex: Int { fields.startIndex }
    public var endIndex: Int { fields.endIndex }
    public subscript(position: Int) -> Element { (fields[position].name, fields[position].value) }

    /// The last value of `name`, or nil.
    public subscript(name: String) -> String? {
        get { fields.last { $0.name == name }?.value }
        set {
            if let newValue { replaceOrAppend(name, newValue) } else { removeAll(name) }
        }
    }

    /// `self[name]` for a name of 4 bytes (`more`, asked of every reply the host sends): the
    /// others are ruled out by their length, without the call a comparison of names makes.
    func lastValue(ofFourByteName name: String) -> String? {
        // A constant length: compared with the name's own, the lookup was not inlined (+62
        // instructions a message of the routed echo).
        assert(name.utf8.count == 4, "a name of 4 bytes")
        return fields.last { $0.name.utf8.count == 4 && $0.name == name }?.value
    }

    /// Every value of `name`, in order.
    public func values(of name: String) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }

    /// The typed view (SPEC §1) of the last value of `name`.
    public func typed(_ name: String) -> HeaderValue? {
        self[name].map(HeaderValue.init(parsing:))
    }

    public func contains(_ name: String) -> Bool {
        fields.contains { $0.name == name }
    }

    public mutating func append(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Sets `name` to `value`: the first occurrence is replaced in place (keeping its position),
    /// later ones are removed; a new key goes to the end. Headers that already say so are left
    /// untouched, so a reply that echoes its request's headers shares their storage.
    public mutating func replaceOrAppend(_ name: String, _ value: String) {
        guard let first = fields.firstIndex(where: { $0.name == name }) else {
            append(name, value)
            return
        }
        if fields[first].value == value, !fields[(first + 1)...].contains(where: { $0.name == name }) { return }
        fields[first].value = value
        var index = fields.index(after: first)
        while index < fields.endIndex {
            if fields[index].name == name { fields.remove(at: index) } else { index += 1 }
        }
    }

    /// Empties the list, keeping its storage for `count` fields when no other copy shares it.
    mutating func removeAll(reservingCapacity count: Int) {
        fields.removeAll(keepingCapacity: true)
        fields.reserveCapacity(count)
    }

    /// Removes every `name`; a list without it is left untouched (not copied when shared).
    public mutating func removeAll(_ name: String) {
        guard contains(name) else { return }
        fields.removeAll { $0.name == name }
    }

    /// Removes every field named `name` in any case of its ASCII letters: a name a layer keeps
    /// for itself (`x-client`), which a peer that matches names without case (as HTTP does)
    /// must not find sent by someone else too.
    public mutating func removeAll(anyCaseOf name: String) {
        guard fields.contains(where: { Self.matches($0.name, name) }) else { return }
        fields.removeAll { Self.matches($0.name, name) }
    }

    /// Compared byte by byte, without a lowered copy of either: it runs on every request a
    /// child or a NATS worker is given.
    private static func matches(_ field: String, _ name: String) -> Bool {
        field.utf8.count == name.utf8.count && zip(field.utf8, name.utf8).allSatisfy { lowercased($0) == lowercased($1) }
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    public static func == (lhs: Headers, rhs: Headers) -> Bool { lhs.fields == rhs.fields }
    public func hash(into hasher: inout Hasher) { hasher.combine(fields) }
}

extension Headers: CustomStringConvertible {
    public var description: String {
        "[" + fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
